"""The evidence store's named queries (cloudformation/deploy_evidence.yaml), run as written in a
real SQL engine that reads JSON lines: DuckDB, over records files from scripts/gen-evidence (built
from the real reaper's records). The table is a DuckDB view with the Glue table's columns and
types, and the Hive-style keys as partitions, as Athena's partition projection presents them.

Each query's result is checked against the generator's exact sums (savings, compliance) or a
count computed here from the files. What only Athena checks: the JsonSerDe and its reading of
gzip by suffix, partition projection, the workgroup's scan cutoff, and Trino's dialect (the
queries keep to SQL both engines share: CASE, coalesce, substr, CAST, round, count(DISTINCT),
a CTE and a join).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts/lib"))
import cfn_render  # noqa: E402  (scripts/lib is not a package)

TEMPLATE = ROOT / "cloudformation/deploy_evidence.yaml"
DATABASE = "ec2_reaper"
# Glue's types in DuckDB's words.
TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "boolean": "BOOLEAN",
         "decimal(20,10)": "DECIMAL(20,10)"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """4 accounts x 2 regions x 12 runs; or the store EVIDENCE_STORE names (`make evidence-bench`
    runs these tests over its 10 000 files)."""
    given = os.environ.get("EVIDENCE_STORE")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("evidence") / "store"
    subprocess.run([str(ROOT / "scripts/gen-evidence"), "--accounts", "4", "--regions", "2", "--runs", "12",
                    "--seed", "7", str(out)], check=True, capture_output=True, text=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_render.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def db(store, template):
    table = template["Resources"]["EvidenceTable"]["Properties"]["TableInput"]
    columns = {c["Name"]: TYPES[c["Type"]] for c in table["StorageDescriptor"]["Columns"]}
    keys = [k["Name"] for k in table["PartitionKeys"]]
    con = duckdb.connect()
    con.execute(f"CREATE SCHEMA {DATABASE}")
    cols = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    hive = ", ".join(f"'{k}': 'VARCHAR'" for k in keys)
    glob = store / "evidence" / "account=*" / "region=*" / "dt=*" / "*.jsonl.gz"
    con.execute(
        f"CREATE VIEW {DATABASE}.evidence AS SELECT * FROM read_json('{glob}', "
        f"format = 'newline_delimited', columns = {{{cols}}}, hive_partitioning = true, "
        f"hive_types = {{{hive}}})")
    yield con
    con.close()


def queries(template) -> dict[str, str]:
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Athena::NamedQuery":
            sql = res["Properties"]["QueryString"]["Fn::Sub"]
            out[name] = sql.replace("${Database}", DATABASE)
    return out


def run(db, sql) -> list[dict]:
    cur = db.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def records(store: Path) -> list[dict]:
    out = []
    for f in sorted((store / "evidence").rglob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    return out


def queries_over(template, table: str) -> dict[str, str]:
    return {k: v for k, v in queries(template).items() if f'"{DATABASE}"."{table}"' in v}


def test_the_template_has_the_named_queries(template):
    assert sorted(queries_over(template, "evidence")) == [
        "ComplianceOverTime", "NoncompliantAndFailed", "ReapedNextSevenDays", "SavingsByAccountAndMonth",
        "TopOwnersByExpiring"]
    assert sorted(queries_over(template, "clicks")) == ["OwnerActionsByMonth"]
    assert len(queries(template)) == 6


def test_the_view_reads_every_record_with_its_partitions(db, store):
    sums = json.loads((store / "sums.json").read_text())
    (n,) = db.execute(f"SELECT count(*) FROM {DATABASE}.evidence").fetchone()
    assert n == sums["records"]
    # The partition values are the keys', and equal what each line repeats.
    rows = run(db, f"SELECT DISTINCT account, region, dt FROM {DATABASE}.evidence")
    assert all(len(r["account"]) == 12 and len(r["dt"]) == 10 for r in rows)


def test_savings_by_account_and_month_equal_the_generators_sums_exactly(db, store, template):
    sums = json.loads((store / "sums.json").read_text())
    got = {(r["account"], r["month"]): (r["terminated"], r["stopped"], r["stamped"], r["failed"],
                                        Decimal(r["saved_per_month"]))
           for r in run(db, queries(template)["SavingsByAccountAndMonth"])}
    want = {(m["account"], m["month"]): (m["terminated"], m["stopped"], m["stamped"], m["failed"],
                                         Decimal(m["saved_per_month"]))
            for m in sums["months"]}
    nonzero = {k: v for k, v in want.items() if any(v)}
    assert {k: v for k, v in got.items() if any(v)} == nonzero
    assert len(nonzero) >= 8, "the fixture must cover several accounts and months"
    # Exact: a Decimal total, not a float near it.
    assert sum(v[4] for v in got.values()) == sum(v[4] for v in want.values())


def test_compliance_over_time_equals_the_generators_sums(db, store, template):
    sums = json.loads((store / "sums.json").read_text())
    rows = run(db, queries(template)["ComplianceOverTime"])
    got = {(r["account"], r["month"]): (r["compliant"], r["subject"]) for r in rows}
    want = {(c["account"], c["month"]): (c["compliant"], c["subject"]) for c in sums["compliance"]}
    assert got == want
    for r in rows:
        assert r["share"] == pytest.approx(round(r["compliant"] / r["subject"], 4))


def test_noncompliant_and_failed_lists_each_such_live_instance_line(db, store, template):
    want = sorted((r["account"], r["region"], r["dt"], r["instance_id"]) for r in records(store)
                  if r["record"] == "instance" and r["mode"] == "live"
                  and (r["verdict"] in ("stop", "noncompliant") or r["outcome"] in ("failed", "unknown")))
    rows = run(db, queries(template)["NoncompliantAndFailed"])
    assert sorted((r["account"], r["region"], r["dt"], r["instance_id"]) for r in rows) == want
    assert want, "the fixture has stopped instances"
    assert [r["dt"] for r in rows] == sorted((r["dt"] for r in rows), reverse=True)


def test_top_owners_count_distinct_expiring_instances(db, store, template):
    per_owner: dict[str, set] = {}
    for r in records(store):
        if r["record"] == "instance" and r["mode"] == "live" and r["verdict"] in ("expiring", "terminate"):
            per_owner.setdefault(r["owner"] or "(no owner tag)", set()).add(r["instance_id"])
    want = sorted(((o, len(ids)) for o, ids in per_owner.items()), key=lambda x: (-x[1], x[0]))[:25]
    rows = run(db, queries(template)["TopOwnersByExpiring"])
    assert [(r["owner"], r["instances"]) for r in rows] == want
    assert want


def test_what_will_be_reaped_comes_from_each_latest_run(db, store, template):
    recs = records(store)
    latest: dict[tuple, str] = {}
    for r in recs:
        if r["record"] == "run" and r["trigger"] != "instance-state":
            k = (r["account"], r["region"])
            latest[k] = max(latest.get(k, ""), f"{r['run_at']} {r['run_id']}")
    want = sorted((r["termination_date"], r["account"], r["region"], r["instance_id"]) for r in recs
                  if f"{r['run_at']} {r['run_id']}" == latest.get((r["account"], r["region"]))
                  and (r["record"] == "upcoming" or (r["record"] == "instance" and r["verdict"] == "expiring")))
    rows = run(db, queries(template)["ReapedNextSevenDays"])
    assert [(r["termination_date"], r["account"], r["region"], r["instance_id"]) for r in rows] == want
    assert want, "the fixture's latest runs have instances coming due"


# ---- owner actions: the clicks table ----------------------------------------------------------
CLICK = json.loads((ROOT / "tests/fixtures/evidence/click.json").read_text())


def test_the_clicks_table_has_every_field_of_the_record_reaper_actions_writes(template):
    """tests/fixtures/evidence/click.json is the record app::click serializes (its unit test
    compares them); the Glue table reads each field as a column, dt as the partition."""
    table = template["Resources"]["ClicksTable"]["Properties"]["TableInput"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    keys = [k["Name"] for k in table["PartitionKeys"]]
    assert keys == ["dt"]
    assert sorted(columns + keys) == sorted(CLICK)


def test_owner_actions_by_month_counts_each_click(tmp_path, template):
    """Clicks written as reaper-actions writes them (one object per file under clicks/dt=<day>/),
    queried as written in DuckDB."""
    table = template["Resources"]["ClicksTable"]["Properties"]["TableInput"]
    columns = {c["Name"]: TYPES[c["Type"]] for c in table["StorageDescriptor"]["Columns"]}
    clicks = [
        ("2030-01-01", {"outcome": "kept", "days": 3, "instance_id": "i-1"}),
        ("2030-01-01", {"outcome": "refused-date-changed", "days": 3, "instance_id": "i-1",
                        "old_date": None, "new_date": None, "reason": "Nothing changed."}),
        ("2030-01-20", {"outcome": "kept", "days": 7, "instance_id": "i-2"}),
        ("2030-01-21", {"outcome": "refused-not-owner", "days": 1, "instance_id": "i-3", "clicker": "slack:U0OTHER34",
                        "old_date": None, "new_date": None, "reason": "Sorry"}),
        ("2030-02-02", {"outcome": "kept", "days": 1, "instance_id": "i-4", "account": "222222222222", "via": "link",
                        "clicker": "link"}),
        ("2030-02-03", {"outcome": "refused-token", "days": None, "instance_id": None, "account": None,
                        "region": None, "announced": None, "old_date": None, "new_date": None, "reason": "expired"}),
    ]
    for n, (dt, change) in enumerate(clicks):
        record = {**CLICK, **change, "dt": dt, "at": f"{dt}T12:00:0{n}.000Z"}
        d = tmp_path / "clicks" / f"dt={dt}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"12000{n}000-{n:032x}.json").write_text(json.dumps(record))
    con = duckdb.connect()
    con.execute(f"CREATE SCHEMA {DATABASE}")
    cols = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    con.execute(f"CREATE VIEW {DATABASE}.clicks AS SELECT * FROM read_json('{tmp_path}/clicks/dt=*/*.json', "
                f"format = 'newline_delimited', columns = {{{cols}}}, hive_partitioning = true, "
                f"hive_types = {{'dt': 'VARCHAR'}})")
    rows = run(con, queries_over(template, "clicks")["OwnerActionsByMonth"])
    got = [(r["month"], r["account"], r["outcome"], r["clicks"], r["instances"], r["days_kept"]) for r in rows]
    assert got == [
        ("2030-01", "123456789012", "kept", 2, 2, 10),
        ("2030-01", "123456789012", "refused-date-changed", 1, 1, 0),
        ("2030-01", "123456789012", "refused-not-owner", 1, 1, 0),
        ("2030-02", "(no valid token)", "refused-token", 1, 0, 0),
        ("2030-02", "222222222222", "kept", 1, 1, 1),
    ]
    con.close()
