# shellcheck shell=bash
# Helpers shared by scripts/*: sourced, never run. Every script sets `set -euo pipefail` itself.

REAPER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REAPER_VENV=${REAPER_VENV:-$HOME/.cache/ec2-reaper/venv}
# The pinned tools (awscli v1, cfn-lint, cargo-lambda, zig) come from the project venv when it
# exists (`make venv`); otherwise whatever is on PATH is used.
if [[ -d $REAPER_VENV/bin ]]; then
  PATH="$REAPER_VENV/bin:$PATH"
fi
export PATH
PROG=${PROG:-$(basename "$0")}
REAPER_PY=${REAPER_PY:-python3}
# Seconds between polls of a StackSet operation (tests set it low).
REAPER_POLL_SECONDS=${REAPER_POLL_SECONDS:-10}

ARTIFACTS_STACK_SET_DEFAULT=ec2-reaper-artifacts
REAPER_STACK_SET_DEFAULT=ec2-reaper

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
# Usage error (bad flag or value): exit 2. Runtime failure: exit 1.
die_usage() { printf '%s: error: %s\n(see %s --help)\n' "$PROG" "$*" "$PROG" >&2; exit 2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# usage_from_header FILE: print the leading comment block of a script (its --help).
usage_from_header() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$1"
}

# need_value FLAG "$@": the flag must be followed by a non-empty value that is not another flag.
need_value() {
  local flag=$1
  shift
  if [[ $# -lt 1 || -z $1 || $1 == --* ]]; then
    die_usage "$flag needs a value"
  fi
}

require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH${2:+ ($2)}"
}

# check_list FLAG REGEX WHAT CSV: every comma-separated item must match REGEX.
check_list() {
  local flag=$1 re=$2 what=$3 csv=$4 item
  [[ -n $csv ]] || die_usage "$flag needs at least one $what"
  IFS=, read -r -a _items <<<"$csv"
  for item in "${_items[@]}"; do
    [[ $item =~ $re ]] || die_usage "$flag: '$item' is not $what"
  done
}

REGION_RE='^[a-z]{2}(-[a-z]+)+-[0-9]+$'
ACCOUNT_RE='^[0-9]{12}$'
OU_RE='^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$'
# Bucket prefix: <prefix>-<region> must fit S3's 63 characters for the longest region name
# (15: us-isof-south-1), so at most 47 characters. Same rule as the templates' AllowedPattern.
PREFIX_RE='^[a-z0-9]([a-z0-9-]{0,45}[a-z0-9])?$'
BUCKET_RE='^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'

check_prefix() {
  [[ $2 =~ $PREFIX_RE ]] ||
    die_usage "$1: '$2' is not a valid bucket prefix (1-47 lowercase letters, digits, hyphens; starts and ends with a letter or digit, so <prefix>-<region> fits S3's 63 characters)"
}

check_bucket() {
  [[ $2 =~ $BUCKET_RE ]] || die_usage "$1: '$2' is not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"
}

# The region the StackSets are administered from (and the default for single-region commands).
admin_region() {
  printf '%s' "${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
}

caller_account() {
  aws sts get-caller-identity --query Account --output text --region "$(admin_region)" ||
    die "cannot call sts get-caller-identity: are AWS credentials configured?"
}

caller_partition() {
  local arn
  arn=$(aws sts get-caller-identity --query Arn --output text --region "$(admin_region)") ||
    die "cannot call sts get-caller-identity: are AWS credentials configured?"
  printf '%s' "$arn" | cut -d: -f2
}

# py SCRIPT ARGS...: the Python helpers beside this file (stdlib + PyYAML, which awscli v1 brings).
py() {
  "$REAPER_PY" "$REAPER_ROOT/scripts/lib/$1" "${@:2}"
}

# wait_operation STACK_SET OPERATION_ID [TIMEOUT_SECONDS] [CALL_AS_ARGS...]
# Polls until SUCCEEDED (0) or FAILED/STOPPED/timeout (1, with per-account/region results).
wait_operation() {
  local ss=$1 op=$2 timeout=${3:-3600}
  local extra=("${@:4}")
  local start status
  start=$(date +%s)
  while :; do
    status=$(aws cloudformation describe-stack-set-operation --stack-set-name "$ss" \
      --operation-id "$op" "${extra[@]}" --query StackSetOperation.Status --output text \
      --region "$(admin_region)") || die "describe-stack-set-operation $op on $ss failed"
    case $status in
      SUCCEEDED)
        log "$ss: operation $op SUCCEEDED"
        return 0
        ;;
      FAILED | STOPPED)
        log "$ss: operation $op $status; results per account and region:"
        aws cloudformation list-stack-set-operation-results --stack-set-name "$ss" \
          --operation-id "$op" "${extra[@]}" --region "$(admin_region)" \
          --query 'Summaries[].[Account,Region,Status,StatusReason]' --output table >&2 || true
        return 1
        ;;
      RUNNING | QUEUED | STOPPING) ;;
      *) log "$ss: operation $op has unexpected status '$status'" ;;
    esac
    if (($(date +%s) - start >= timeout)); then
      log "$ss: operation $op still $status after ${timeout}s; follow it with:"
      log "  aws cloudformation describe-stack-set-operation --stack-set-name $ss --operation-id $op"
      return 1
    fi
    sleep "$REAPER_POLL_SECONDS"
  done
}
