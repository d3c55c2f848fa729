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

# Secrets (NoEcho values such as the Slack webhook) registered with add_secret are replaced by
# **** in every message these helpers print, and in AWS CLI errors passed through show_err.
REAPER_SECRETS=()
add_secret() { [[ -z ${1:-} ]] || REAPER_SECRETS+=("$1"); }
mask() {
  local text=$1 secret
  for secret in ${REAPER_SECRETS[@]+"${REAPER_SECRETS[@]}"}; do text=${text//"$secret"/****}; done
  printf '%s' "$text"
}
log() { printf '%s: %s\n' "$PROG" "$(mask "$*")" >&2; }
# Usage error (bad flag or value): exit 2. Runtime failure: exit 1.
die_usage() { printf '%s: error: %s\n(see %s --help)\n' "$PROG" "$(mask "$*")" "$PROG" >&2; exit 2; }
die() { printf '%s: error: %s\n' "$PROG" "$(mask "$*")" >&2; exit 1; }
# show_err FILE: a captured AWS CLI error, masked, to stderr.
show_err() { [[ ! -s $1 ]] || printf '%s\n' "$(mask "$(cat "$1")")" >&2; }

# aws_error_class FILE: what kind of failure the AWS CLI error in FILE is, one word:
# network | credentials | not-found | access-denied | throttled | other. The scripts say which, so
# a DNS or proxy failure is not reported as missing credentials or a missing StackSet.
aws_error_class() {
  local f=$1
  if grep -Eqi 'Could not connect to the endpoint|EndpointConnectionError|Connection (was closed|refused|reset|aborted)|Read timeout|Connect timeout|timed out|Name or service not known|Temporary failure in name resolution|SSL validation failed|Failed to establish a new connection|ProxyError' "$f"; then
    echo network
  elif grep -Eqi 'Unable to locate credentials|InvalidClientTokenId|ExpiredToken|SignatureDoesNotMatch|security token included in the request is (invalid|expired)|UnrecognizedClientException|Error loading SSO Token|Token has expired|The config profile .* could not be found|InvalidAccessKeyId|AuthFailure' "$f"; then
    echo credentials
  elif grep -Eqi 'AccessDenied|UnauthorizedOperation|not authorized to perform|Forbidden|\(403\)' "$f"; then
    echo access-denied
  elif grep -Eqi 'NotFound|NoSuchBucket|NoSuchKey|NoSuchVersion|does not exist|\(404\)|Not Found' "$f"; then
    echo not-found
  elif grep -Eqi 'Throttling|RequestLimitExceeded|SlowDown|TooManyRequests|Rate exceeded' "$f"; then
    echo throttled
  else
    echo other
  fi
}

# aws_fail WHAT ERRFILE: print the AWS error (masked) and die naming its class and what to check.
aws_fail() {
  local what=$1 f=$2 class hint
  class=$(aws_error_class "$f")
  case $class in
    network) hint="the AWS endpoint could not be reached (network, DNS, proxy or AWS_ENDPOINT_URL); credentials were not the problem" ;;
    credentials) hint="the credentials were refused or missing (AWS_PROFILE, SSO login, environment)" ;;
    access-denied) hint="the credentials work but lack a permission for this call" ;;
    not-found) hint="AWS says it does not exist (name, region or account?)" ;;
    throttled) hint="AWS throttled the call; try again later" ;;
    *) hint="see the AWS error above" ;;
  esac
  show_err "$f"
  die "$what failed [$class]: $hint"
}

# usage_from_header FILE: print the leading comment block of a script (its --help).
usage_from_header() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$1"
}

# die_unknown_flag ARG SCRIPT: refuse an unknown argument, suggesting the closest flag the
# script's --help names.
die_unknown_flag() {
  local arg=$1 hint=""
  if [[ $arg == -* ]]; then
    mapfile -t _flags < <(usage_from_header "$2" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
    hint=$(py deploy_steps.py suggest -- "${arg%%=*}" "${_flags[@]}" 2>/dev/null || true)
  fi
  die_usage "unknown argument '$arg'$hint"
}

# add_regions VALUE: --region R (repeatable, comma-separated) appends to $regions (CSV).
add_regions() {
  local v=$1
  regions=${regions:+$regions,}$v
}

# deprecated_regions_flag: --regions still works, with one line on stderr saying so.
REAPER_REGIONS_WARNED=""
deprecated_regions_flag() {
  [[ -n $REAPER_REGIONS_WARNED ]] || log "--regions is deprecated: use --region R (repeatable, or comma-separated)"
  REAPER_REGIONS_WARNED=1
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

# require_versioned BUCKET REGION OWNER: the code is pinned to an S3 object version (SPEC §10),
# so publish and deploy both refuse a bucket without versioning, with the same words.
require_versioned() {
  local bucket=$1 region=$2 owner=$3 status err
  err=$(mktemp)
  status=$(aws s3api get-bucket-versioning --bucket "$bucket" --region "$region" --expected-bucket-owner "$owner" \
    --query Status --output text 2>"$err") || {
    [[ $(aws_error_class "$err") == not-found ]] || aws_fail "get-bucket-versioning $bucket in $region" "$err"
    rm -f "$err"
    die "bucket $bucket is missing in $region (deploy the artifacts StackSet first: scripts/deploy --only artifacts ...)"
  }
  rm -f "$err"
  [[ $status == Enabled ]] && return 0
  [[ $status == None || -z $status ]] && status="never enabled" || status="Status $status"
  die "bucket $bucket in $region is not versioned ($status): the function's code is pinned to an S3 object version, so an unversioned bucket cannot be used. The artifacts StackSet creates its buckets versioned; for this bucket run: aws s3api put-bucket-versioning --bucket $bucket --region $region --versioning-configuration Status=Enabled, then publish again"
}

# real_version VID: true when VID is an S3 version id that pins an object (not a missing one).
real_version() { [[ -n $1 && $1 != None && $1 != null ]]; }

# unpinnable_object BUCKET KEY: why an object without a version id cannot be deployed (publish
# and deploy say the same).
unpinnable_object() {
  printf '%s' "s3://$1/$2 has no version id (it was written while $1 was not versioned), so the function cannot be pinned to it; with versioning on, publish the build again under a new key (scripts/publish --version NEW ...)"
}

# find_reaperctl: sets REAPERCTL to a reaperctl that has `check-config` (the function's own
# validators), building the workspace's binaries when there is none; dies when it has not.
find_reaperctl() {
  local target=${CARGO_TARGET_DIR:-$REAPER_ROOT/target} candidate
  if [[ -z ${REAPERCTL:-} ]]; then
    for candidate in "$target/debug/reaperctl" "$REAPER_ROOT/target/debug/reaperctl"; do
      if [[ -x $candidate ]]; then REAPERCTL=$candidate; break; fi
    done
  fi
  if [[ -z ${REAPERCTL:-} ]]; then
    require_cmd cargo "needed to build reaperctl, which checks the function's parameters"
    log "building reaperctl (checks parameters with the function's own validators): cargo build --locked --workspace --bins"
    (cd "$REAPER_ROOT" && cargo build --quiet --locked --workspace --bins >&2) || die "building reaperctl failed"
    REAPERCTL="$target/debug/reaperctl"
  fi
  [[ -x $REAPERCTL ]] || die "REAPERCTL=$REAPERCTL is not an executable"
  "$REAPERCTL" check-config --help >/dev/null 2>&1 ||
    die "this reaperctl ($REAPERCTL) has no check-config; rebuild it (cargo build --locked --workspace --bins) or point REAPERCTL at a current one. The parameters are never deployed unchecked."
}

# The region the StackSets are administered from (and the default for single-region commands).
admin_region() {
  printf '%s' "${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
}

# caller_identity: sets CALLER_ACCOUNT, CALLER_ARN, CALLER_PARTITION and CALLER_PRINCIPAL (the IAM
# principal ARN an S3 bucket policy's aws:PrincipalArn sees: the role for an assumed-role session).
caller_identity() {
  local err out
  err=$(mktemp)
  if ! out=$(aws sts get-caller-identity --query '[Account,Arn]' --output text --region "$(admin_region)" 2>"$err"); then
    aws_fail "sts get-caller-identity" "$err"
  fi
  rm -f "$err"
  read -r CALLER_ACCOUNT CALLER_ARN <<<"$out"
  CALLER_PARTITION=$(printf '%s' "$CALLER_ARN" | cut -d: -f2)
  if [[ $CALLER_ARN =~ ^arn:([^:]+):sts::([0-9]{12}):user/(.+)$ ]]; then
    CALLER_PRINCIPAL="arn:${BASH_REMATCH[1]}:iam::${BASH_REMATCH[2]}:user/${BASH_REMATCH[3]}"
  elif [[ $CALLER_ARN =~ ^arn:([^:]+):sts::([0-9]{12}):assumed-role/([^/]+)/ ]]; then
    # The session ARN drops the role's path (SSO roles have one), which aws:PrincipalArn keeps:
    # ask IAM for the real ARN, and fall back to the root path only when that is not allowed.
    CALLER_PRINCIPAL="arn:${BASH_REMATCH[1]}:iam::${BASH_REMATCH[2]}:role/${BASH_REMATCH[3]}"
    local full
    if full=$(aws iam get-role --role-name "${BASH_REMATCH[3]}" --query Role.Arn --output text 2>/dev/null); then
      CALLER_PRINCIPAL=$full
    else
      log "could not read the path of role ${BASH_REMATCH[3]} (iam:GetRole); assuming the root path"
    fi
  else
    CALLER_PRINCIPAL=$CALLER_ARN
  fi
}

caller_account() {
  caller_identity
  printf '%s' "$CALLER_ACCOUNT"
}

caller_partition() {
  caller_identity
  printf '%s' "$CALLER_PARTITION"
}

# py SCRIPT ARGS...: the Python helpers beside this file (stdlib + PyYAML, which awscli v1 brings).
py() {
  "$REAPER_PY" "$REAPER_ROOT/scripts/lib/$1" "${@:2}"
}

# wait_operation STACK_SET OPERATION_ID [TIMEOUT_SECONDS] [CALL_AS_ARGS...]
# Polls until SUCCEEDED (0) or FAILED/STOPPED/timeout (1). Every poll prints one progress line
# (accounts·regions done / failed / pending, elapsed), the end a summary with each failure's
# account, region and reason. Sets OP_REACHED to the number of stack instances the operation
# reached (0: it reached no account at all).
OP_REACHED=0
wait_operation() {
  local ss=$1 op=$2 timeout=${3:-3600}
  local extra=("${@:4}")
  local start status elapsed err results
  err=$(mktemp)
  results=$(mktemp)
  start=$(date +%s)
  while :; do
    status=$(aws cloudformation describe-stack-set-operation --stack-set-name "$ss" \
      --operation-id "$op" "${extra[@]}" --query StackSetOperation.Status --output text \
      --region "$(admin_region)" 2>"$err") ||
      aws_fail "describe-stack-set-operation $op on $ss" "$err"
    aws cloudformation list-stack-set-operation-results --stack-set-name "$ss" --operation-id "$op" \
      "${extra[@]}" --region "$(admin_region)" --output json >"$results" 2>"$err" || echo '{}' >"$results"
    elapsed=$(($(date +%s) - start))
    case $status in
      SUCCEEDED | FAILED | STOPPED)
        while IFS= read -r line; do log "$ss: $line"; done < <(py deploy_steps.py progress "$op" "$results" \
          --elapsed "$elapsed" --summary --status "$status" --count-file "$results.count")
        OP_REACHED=$(cat "$results.count")
        rm -f "$err" "$results" "$results.count"
        [[ $status == SUCCEEDED ]]
        return
        ;;
      RUNNING | QUEUED | STOPPING) log "$ss: $(py deploy_steps.py progress "$op" "$results" --elapsed "$elapsed")" ;;
      *) log "$ss: operation $op has unexpected status '$status'" ;;
    esac
    if ((elapsed >= timeout)); then
      log "$ss: operation $op still $status after ${timeout}s; follow it with:"
      log "  aws cloudformation describe-stack-set-operation --stack-set-name $ss --operation-id $op"
      rm -f "$err" "$results"
      return 1
    fi
    sleep "$REAPER_POLL_SECONDS"
  done
}
