#!/usr/bin/env bash
# The end-to-end demo: a township and three villages on loopback with real
# TLS. The villages work while the township server is down, the server
# comes back, their daemons sync, the township decides close-offs and sends
# notices that reach the villages, and the consolidated report, the Excel
# file and the dashboard are printed. Every process it starts is stopped on
# exit, on failure and on Ctrl-C.
#
#   scripts/demo.sh [--dir DIR] [--keep-running] [--no-build --bin BUILD_DIR]
#
# --no-build --bin DIR uses binaries already built in DIR (DIR/client/tally,
# DIR/daemon/tallyd): that is how ctest runs it. Exits non-zero if any step
# fails.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK="" KEEP=0 BUILD=1 BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) WORK=$2; shift 2 ;;
    --keep-running) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN=$2; shift 2 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: 失败：$*" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
  say "安装依赖、编译（Release）"
  "$ROOT/scripts/deps.sh"
  BIN=${BIN:-$ROOT/build-demo}
  cmake -S "$ROOT" -B "$BIN" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BIN" -j2 --target tally tallyd >/dev/null
fi
[ -n "$BIN" ] || die "--no-build needs --bin BUILD_DIR"
BIN=$(cd "$BIN" && pwd)
TALLY=$BIN/client/tally
TALLYD=$BIN/daemon/tallyd
[ -x "$TALLY" ] && [ -x "$TALLYD" ] || die "no tally/tallyd under $BIN"

if [ -z "$WORK" ]; then
  WORK=$(mktemp -d /tmp/tally-demo.XXXXXX)
else
  mkdir -p "$WORK"
  [ -z "$(ls -A "$WORK")" ] || die "$WORK is not empty"
fi
WORK=$(cd "$WORK" && pwd)

# Every background process we start is recorded here; the trap stops them
# (SIGTERM, then SIGKILL after a grace) and never touches anything else.
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  [ "$rc" = 0 ] || echo "demo: 出错退出（$rc），日志在 $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TOWN=$WORK/town.db
T() { "$TALLY" --db "$TOWN" "$@"; }
V() { local db=$1; shift; "$TALLY" --db "$WORK/$db.db" "$@"; }
day() { date -d "$1" +%F; }
# jget FILTER: reads JSON on stdin, prints a Python expression over it (j).
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls until the command succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || die "等待超时：$what"
    sleep 0.3
  done
}

SERVER_PID="" PORT=0
start_server() {
  local out=$WORK/serve.out
  : >"$out"
  "$TALLYD" serve --db "$TOWN" --listen "127.0.0.1:$PORT" >"$out" 2>>"$WORK/serve.log" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_for 20 "tallyd serve 启动" grep -q '^port=' "$out"
  PORT=$(sed -n 's/^port=\([0-9]*\) .*/\1/p' "$out")
  echo "tallyd serve 已在 https://127.0.0.1:$PORT 监听（pid $SERVER_PID）"
}
stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || die "tallyd serve 没有正常退出"
  SERVER_PID=""
}

say "1. 建立乡镇台账（青山镇），启动乡镇服务器"
T init --role township --name 青山镇 >/dev/null
start_server
URL=https://127.0.0.1:$PORT

say "2. 登记三个村，各村电脑用加入码加入"
declare -A VID
VILLAGES=(王家村 李家村 张家村)
SLUG=([0]=wang [1]=li [2]=zhang)
for i in 0 1 2; do
  name=${VILLAGES[$i]} slug=${SLUG[$i]}
  VID[$slug]=$(T village add --name "$name" --url "$URL" 2>/dev/null | head -n1 | awk '{print $1}')
  [ -n "${VID[$slug]}" ] || die "village add $name"
  code=$(T village code "${VID[$slug]}" --url "$URL" 2>/dev/null | head -n1 | awk '{print $1}')
  V "$slug" join "$code" --name "${name}村委会电脑" >/dev/null 2>&1 || die "join $name"
  V "$slug" sync >/dev/null 2>&1 || die "first sync $name"
  echo "$name 已加入（村编号 ${VID[$slug]}，数据库 $WORK/$slug.db）"
done

say "3. 乡镇录入巡察反馈问题，分解为三个村的整改任务"
P=$(T problem add --source patrol --round 第三轮 --doc-no "青巡反馈〔2024〕3号" \
      --category 村级财务 --text "部分村集体“三资”管理不规范，账目公开不及时" \
      --manifestations "村务公开栏长期未更新；部分支出凭证缺少经办人签字" 2>/dev/null)
TASK_WANG=$(T task add --problem "$P" --village "${VID[wang]}" --measures "补齐2023年以来支出凭证签字，按月公开账目" \
      --owner 王会计 --leader 王书记 --deadline "$(day '+30 days')" --target "凭证齐全、按月公开" 2>/dev/null)
TASK_LI=$(T task add --problem "$P" --village "${VID[li]}" --measures "更新村务公开栏，建立公开台账" \
      --owner 李文书 --leader 李主任 --deadline "$(day '+8 days')" 2>/dev/null)
TASK_ZHANG=$(T task add --problem "$P" --village "${VID[zhang]}" --measures "清理村集体资产，登记入账" \
      --owner 张出纳 --leader 张书记 --deadline "$(day '-5 days')" 2>/dev/null)
for slug in wang li zhang; do V "$slug" sync >/dev/null 2>&1 || die "sync $slug"; done
echo "问题 $P，任务：王家村 $TASK_WANG，李家村 $TASK_LI，张家村 $TASK_ZHANG（各村已收到）"

say "4. 乡镇服务器停机；各村照常填报（离线）"
stop_server
echo "服务器已停止。"
V wang progress "$TASK_WANG" --percent 100 --note "支出凭证已全部补签，8月起按月公开" >/dev/null 2>&1
V wang submit "$TASK_WANG" >/dev/null 2>&1
V li progress "$TASK_LI" --percent 100 --note "公开栏已更新<b>（附照片）</b>" >/dev/null 2>&1
V li submit "$TASK_LI" >/dev/null 2>&1
V zhang progress "$TASK_ZHANG" --percent 40 --note "已清点固定资产32项，尚有土地台账未核实" >/dev/null 2>&1
for i in 0 1 2; do
  slug=${SLUG[$i]}
  sp=$(V "$slug" problem add --source self_check --text "${VILLAGES[$i]}自查：村民小组会议记录不全" 2>/dev/null)
  st=$(V "$slug" task add --problem "$sp" --measures "补记会议记录，每月检查一次" \
        --owner "${VILLAGES[$i]:0:1}委员" --leader "${VILLAGES[$i]:0:1}书记" --deadline "$(day '+20 days')" 2>/dev/null)
  V "$slug" progress "$st" --percent 50 --note "已补记上半年会议记录" >/dev/null 2>&1
  pending=$(V "$slug" --json status 2>/dev/null | jget 'j["pending"]')
  echo "${VILLAGES[$i]}：离线记下 $pending 条修改，等待上传"
done

say "5. 乡镇服务器恢复，各村 tallyd sync 自动同步"
start_server
for slug in wang li zhang; do
  "$TALLYD" sync --db "$WORK/$slug.db" --idle-pull 1 --backoff-min-ms 100 --backoff-max-ms 1000 \
    >/dev/null 2>>"$WORK/$slug.syncd.log" &
  PIDS+=("$!")
done
queue_empty() { [ "$(V "$1" --json status | jget 'j["pending"]')" = 0 ]; }
for slug in wang li zhang; do wait_for 60 "$slug 上传完毕" queue_empty "$slug"; done
echo "三个村的队列已清空。"

say "6. 乡镇审核销号、发出通报和预警"
T review "$TASK_WANG" --approve --opinion "凭证齐全，同意销号" >/dev/null 2>&1 || die "approve"
T review "$TASK_LI" --reject --opinion "缺少公开栏照片，请补充后再申请" >/dev/null 2>&1 || die "reject"
T notice send --type supervision --village "${VID[zhang]}" --title "关于张家村整改逾期的督办通报" \
  --text "张家村“三资”清理任务已逾期，请于一周内完成并报送佐证材料。" --task "$TASK_ZHANG" >/dev/null 2>&1 || die "notice"
T notice send --type warning --title "巡察整改进度预警" \
  --text "各村须在时限内完成巡察反馈问题整改，逾期将约谈责任人。" >/dev/null 2>&1 || die "warning"
task_status() { V "$1" --json task show "$2" | jget 'j["task"]["status"] if "task" in j else j["status"]'; }
got_status() { [ "$(task_status "$1" "$2")" = "$3" ]; }
notices() { V "$1" --json notice list | jget 'len(j) if isinstance(j, list) else len(j["notices"])'; }
got_notices() { [ "$(notices "$1")" -ge "$2" ]; }
wait_for 60 "王家村收到销号" got_status wang "$TASK_WANG" closed
wait_for 60 "李家村收到驳回" got_status li "$TASK_LI" doing
wait_for 60 "张家村收到督办和预警" got_notices zhang 2
wait_for 60 "王家村收到预警" got_notices wang 1
wait_for 60 "李家村收到预警" got_notices li 1
echo "王家村任务已销号；李家村任务被驳回、回到整改中；张家村收到督办通报；三村收到预警。"

say "7. 乡镇汇总（tally report）"
T report
mkdir -p "$WORK/reports"
XLSX=$(T report --format xlsx -o "$WORK/reports/" 2>/dev/null | head -n1)
[ -f "$XLSX" ] || die "没有生成 .xlsx"
head -c2 "$XLSX" | grep -q PK || die "$XLSX 不是 xlsx 文件"

say "8. 乡镇看板"
PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 12)
printf '%s\n%s\n' "$PASSWORD" "$PASSWORD" | T user passwd 乡镇干部 >/dev/null 2>&1 || die "user passwd"
LOGIN="用户名 乡镇干部  密码 $PASSWORD"
echo "Excel 台账：$XLSX"
echo "看板地址：  $URL/   （自签名证书，浏览器会提示不受信任）"
echo "看板登录：  $LOGIN"
echo "数据目录：  $WORK"

if [ "$KEEP" = 1 ]; then
  say "服务器保持运行，按 Ctrl-C 结束"
  wait "$SERVER_PID" || true
fi
echo "演示完成。"
