"""scripts/gen-evidence: its files follow docs/EVIDENCE.md and its sums.json is what the files hold.

The sums are recomputed here from the files themselves (gzip read back, money as Decimal), so a
generator that wrote one thing and summed another fails; `make evidence-bench` then holds the real
`reaperctl report` to the same sums over 10 000 files.
"""

import gzip
import json
import subprocess
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
GEN = ROOT / "scripts" / "gen-evidence"


def generate(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "store"
    run = subprocess.run([str(GEN), str(out), "--accounts", "3", "--regions", "2", "--runs", "10", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out


def records(out: Path):
    for path in sorted((out / "evidence").rglob("*.jsonl*")):
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode() if path.name.endswith(".gz") else raw.decode()
        lines = [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
        yield path, lines


def test_files_follow_the_contract_and_the_sums_are_what_they_hold(tmp_path: Path) -> None:
    out = generate(tmp_path)
    months: dict = {}
    compliance: dict = {}
    files = 0
    for path, lines in records(out):
        files += 1
        run = lines[0]
        assert run["record"] == "run" and all(line["record"] != "run" for line in lines[1:])
        parts = path.relative_to(out).parts
        assert parts[1:4] == (f"account={run['account']}", f"region={run['region']}", f"dt={run['dt']}")
        assert path.name == f"{run['run_id']}.jsonl.gz"
        instances = [line for line in lines if line["record"] == "instance"]
        judged = sum(v for k, v in run.items() if k.startswith("verdict_"))
        assert run["instances_judged"] == judged
        assert run["subject"] == judged - run["verdict_skip_managed"]
        assert len(instances) == judged - run["verdict_keep"]
        if run["mode"] != "live":
            continue
        key = (run["account"], run["dt"][:7])
        c = compliance.setdefault(key, [0, 0])
        c[0] += run["compliant"]
        c[1] += run["subject"]
        for line in instances:
            m = months.setdefault(key, dict(terminated=0, stopped=0, stamped=0, failed=0, saved_per_month=Decimal(0)))
            done = line["outcome"] == "done"
            for verdict, total in (("terminate", "terminated"), ("stop", "stopped"), ("stamp", "stamped")):
                m[total] += done and line["verdict"] == verdict
            m["failed"] += line["outcome"] == "failed"
            if done and not line["saving_held"] and line["saving_per_month"] is not None:
                m["saved_per_month"] += line["saving_per_month"]
    sums = json.loads((out / "sums.json").read_text())
    assert files == sums["files"] == 3 * 2 * 10
    assert {(r["account"], r["month"]): [r["compliant"], r["subject"]] for r in sums["compliance"]} == compliance
    got = {(r["account"], r["month"]): {k: (Decimal(v) if k == "saved_per_month" else v)
                                        for k, v in r.items() if k not in ("account", "month")}
           for r in sums["months"]}
    assert got == months
    assert any(m["saved_per_month"] > 0 for m in months.values())


def test_the_same_seed_writes_the_same_store(tmp_path: Path) -> None:
    a, b = generate(tmp_path / "a"), generate(tmp_path / "b")
    assert (a / "sums.json").read_text() == (b / "sums.json").read_text()
    assert [p.relative_to(a) for p, _ in records(a)] == [p.relative_to(b) for p, _ in records(b)]


def test_bad_arguments_name_the_flag_and_what_is_accepted(tmp_path: Path) -> None:
    run = subprocess.run([str(GEN), str(tmp_path / "x"), "--runs", "many"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--runs 'many': a whole number from 1 to 10000" in run.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    run = subprocess.run([str(GEN), str(tmp_path / "full")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "exists and is not empty" in run.stderr
