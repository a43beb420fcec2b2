/*
 * tally — the command line for people: the command table and main.
 * Each command's flags are listed here, so `--help` and the parser can
 * never disagree with what the command accepts.
 */
#include "cmds.h"
#include "daemon/dashauth.h"
#include "daemon/serve_cmds.h"

#define END {0}

static const struct cli_flag f_init[] = {
	{"role", 1, 0, "village|township", "本机是村（village）还是乡镇（township）"},
	{"name", 1, 0, "NAME", "村或乡镇的名称，例如 王家村"},
	{"village-id", 1, 0, "ID", "村的编号（加入乡镇台账时由乡镇给出；不给则新建本村记录）"},
	END,
};
static const struct cli_flag f_none[] = {END};
static const struct cli_flag f_village_add[] = {
	{"name", 1, 0, "NAME", "村名（也可直接写在命令后面）"},
	{"url", 1, 1, "URL", "加入码里的服务器地址 https://地址:端口（乡镇；不给则用 tallyd serve 记下的）"},
	{"host", 1, 1, "NAME", "第一次生成证书时写入的主机名或 IP（乡镇）"},
	END,
};
static const struct cli_flag f_village_code[] = {
	{"url", 1, 1, "URL", "加入码里的服务器地址 https://地址:端口"},
	{"host", 1, 1, "NAME", "第一次生成证书时写入的主机名或 IP"},
	END,
};
static const struct cli_flag f_join[] = {
	{"name", 1, 0, "NAME", "本机设备的名称（不给则用计算机名）"},
	END,
};
static const struct cli_flag f_problem_add[] = {
	{"source", 1, 0, "SOURCE", "来源：inspection 巡视|patrol 巡察|audit 审计|supervision 督查|self_check 自查"},
	{"text", 1, 0, "TEXT", "问题原文"},
	{"round", 1, 0, "TEXT", "轮次，例如 第三轮"},
	{"doc-no", 1, 0, "TEXT", "文号"},
	{"category", 1, 0, "TEXT", "问题类别"},
	{"manifestations", 1, 0, "TEXT", "具体表现"},
	END,
};
static const struct cli_flag f_problem_list[] = {
	{"source", 1, 0, "SOURCE", "只列出这个来源的问题"},
	END,
};
static const struct cli_flag f_task_add[] = {
	{"problem", 1, 0, "ID", "所属问题的编号"},
	{"measures", 1, 0, "TEXT", "整改措施"},
	{"owner", 1, 0, "NAME", "责任人"},
	{"leader", 1, 0, "NAME", "责任领导"},
	{"deadline", 1, 0, "DATE", "完成时限 YYYY-MM-DD"},
	{"village", 1, 0, "NAME", "负责整改的村（乡镇必填；村里可省略）"},
	{"target", 1, 0, "TEXT", "整改目标/验收标准"},
	{"root-cause", 1, 0, "TEXT", "问题根源"},
	{"elsewhere", 1, 0, "TEXT", "举一反三"},
	END,
};
static const struct cli_flag f_task_update[] = {
	{"measures", 1, 0, "TEXT", "整改措施"},
	{"owner", 1, 0, "NAME", "责任人"},
	{"leader", 1, 0, "NAME", "责任领导"},
	{"deadline", 1, 0, "DATE", "完成时限 YYYY-MM-DD"},
	{"target", 1, 0, "TEXT", "整改目标/验收标准"},
	{"root-cause", 1, 0, "TEXT", "问题根源"},
	{"elsewhere", 1, 0, "TEXT", "举一反三"},
	{"status", 1, 0, "STATUS", "状态：doing|long_term|withdrawn 等（按状态流转规则）"},
	END,
};
static const struct cli_flag f_task_list[] = {
	{"village", 1, 0, "NAME", "只列出这个村的任务"},
	{"status", 1, 0, "STATUS", "只列出这个状态：todo|doing|submitted|closed|long_term|withdrawn"},
	{"source", 1, 0, "SOURCE", "只列出这个来源的问题下的任务"},
	{"overdue", 0, 0, NULL, "只列出逾期的任务"},
	{"warning", 1, 0, "COLOUR", "只列出这种预警：red|yellow|blue|none"},
	END,
};
static const struct cli_flag f_progress[] = {
	{"percent", 1, 0, "N", "完成进度 0-100"},
	{"note", 1, 0, "TEXT", "进展情况"},
	{"reason", 1, 0, "TEXT", "进度比上次低时，写明原因"},
	{"evidence", 1, 1, "FILE", "佐证材料文件（可多次给出；记录其 SHA-256 和大小）"},
	END,
};
static const struct cli_flag f_evidence_add[] = {
	{"file", 1, 1, "FILE", "佐证材料文件（可多次给出；也可直接写在任务编号后面）"},
	{"progress", 1, 0, "ID", "对应的进展记录编号（不给则只挂在任务上）"},
	END,
};
static const struct cli_flag f_evidence_get[] = {
	{"output", 1, 0, "FILE", "写到这个文件（也可写作 -o FILE）"},
	END,
};
static const struct cli_flag f_review[] = {
	{"approve", 0, 0, NULL, "同意销号"},
	{"reject", 0, 0, NULL, "驳回，任务回到整改中"},
	{"opinion", 1, 0, "TEXT", "审核意见"},
	END,
};
static const struct cli_flag f_reinspect[] = {
	{"holds", 0, 0, NULL, "整改成效巩固"},
	{"rebounded", 0, 0, NULL, "问题反弹，任务回到整改中"},
	{"note", 1, 0, "TEXT", "回头看情况"},
	END,
};
static const struct cli_flag f_extend[] = {
	{"until", 1, 0, "DATE", "申请延期到 YYYY-MM-DD"},
	{"reason", 1, 0, "TEXT", "延期原因"},
	END,
};
static const struct cli_flag f_extend_decide[] = {
	{"approve", 0, 0, NULL, "同意延期（完成时限改为申请的日期）"},
	{"reject", 0, 0, NULL, "不同意延期"},
	{"opinion", 1, 0, "TEXT", "审批意见"},
	END,
};
static const struct cli_flag f_notice_send[] = {
	{"type", 1, 0, "TYPE", "类型：supervision 督办|reminder 提醒|warning 预警|summons 约谈问责"},
	{"title", 1, 0, "TEXT", "标题"},
	{"text", 1, 0, "TEXT", "正文"},
	{"village", 1, 0, "NAME", "发给哪个村（不给则发给所有村）"},
	{"task", 1, 1, "ID", "涉及的任务（可多次给出）"},
	END,
};

static const struct cli_flag f_report[] = {
	{"by", 1, 0, "village|source|summary|ledger|all", "按村、按来源、两者（summary，终端默认）、台账，或全部（文件默认）"},
	{"format", 1, 0, "text|json|csv|xlsx", "输出格式（默认 text；xlsx 默认写到当前目录的 整改台账（汇总）YYYYMMDD.xlsx）"},
	{"output", 1, 0, "FILE|DIR", "写到这个文件或目录（也可写作 -o FILE|DIR）"},
	{"stale-days", 1, 0, "N", "多少天没有进展算久未更新（默认用本机设置，14 天）"},
	{"silent-days", 1, 0, "N", "多少天没有同步算久未同步（默认 7 天）"},
	{"from", 1, 0, "URL", "从乡镇服务器下载报表（https://主机:端口），本机不需要台账数据库"},
	{"token", 1, 0, "TOKEN", "配合 --from：乡镇用户凭证（tally user add 给出；也可用环境变量 TALLY_TOKEN）"},
	{"token-file", 1, 0, "FILE", "配合 --from：从文件读乡镇用户凭证（定时任务推荐）"},
	{"pin", 1, 0, "PIN", "配合 --from：服务器公钥指纹 sha256//..."},
	{"ca", 1, 0, "FILE", "配合 --from：改用 CA 证书文件验证服务器"},
	END,
};
static const struct cli_flag f_sync[] = {
	{"url", 1, 1, "URL", "乡镇服务器地址（不给则用加入时保存的地址）"},
	{"pin", 1, 0, "PIN", "服务器公钥指纹 sha256//...（不给则用加入时保存的）"},
	{"ca", 1, 0, "FILE", "改用乡镇配置的 CA 证书文件验证服务器"},
	{"token", 1, 0, "TOKEN", "设备凭据（不给则用加入时保存的）"},
	END,
};

static const struct cli_cmd commands[] = {
	{"init", NULL, 0, 0, 0, "建立本机的台账数据库", f_init, cmd_init},
	{"status", NULL, 0, 0, 1, "本机身份、待上传的修改和同步情况", f_none, cmd_status},
	{"village add", "NAME", 0, 1, 1, "登记一个村；在乡镇上同时给出该村设备的加入码",
	 f_village_add, cmd_village_add_join},
	{"village code", "VILLAGE", 1, 1, 1, "为已登记的村再生成一个加入码（乡镇）", f_village_code,
	 cmd_village_code},
	{"join", "CODE", 1, 1, 0, "用乡镇给的加入码让本机加入乡镇台账（没有数据库时自动建立）", f_join,
	 cmd_join},
	{"device list", NULL, 0, 0, 1, "列出已加入的设备及其同步情况（乡镇）", f_none, cmd_device_list},
	{"device revoke", "DEVICE", 1, 1, 1, "注销一台设备，它将不能再同步（乡镇）", f_none,
	 cmd_device_revoke},
	{"user add", "NAME", 1, 1, 1, "建立乡镇用户凭证（可读取全部台账），只显示一次（乡镇）", f_none,
	 cmd_user_add},
	{"user passwd", "NAME", 1, 1, 1, "设置乡镇看板的登录密码（从标准输入读取，不写在命令行上）（乡镇）",
	 f_none, cmd_user_passwd},
	{"server new-epoch", NULL, 0, 0, 1, "从备份恢复服务器数据库后运行：各村将重新上传（乡镇）",
	 f_none, cmd_server_new_epoch},
	{"village list", NULL, 0, 0, 1, "列出各村及任务完成情况", f_none, cmd_village_list},
	{"problem add", NULL, 0, 0, 1, "登记反馈问题，输出问题编号", f_problem_add, cmd_problem_add},
	{"problem list", NULL, 0, 0, 1, "列出问题", f_problem_list, cmd_problem_list},
	{"task add", NULL, 0, 0, 1, "建立整改任务，输出任务编号", f_task_add, cmd_task_add},
	{"task list", NULL, 0, 0, 1, "列出整改任务（含逾期和预警）", f_task_list, cmd_task_list},
	{"task show", "TASK", 1, 1, 1, "查看一项任务：进展、佐证、审核、修改历史、冲突", f_none,
	 cmd_task_show},
	{"task update", "TASK", 1, 1, 1, "修改任务的措施、责任人、时限或状态", f_task_update,
	 cmd_task_update},
	{"progress", "TASK", 1, 1, 1, "填报整改进展（可附佐证材料）", f_progress, cmd_progress},
	{"evidence add", "TASK [FILE]...", 1, 4, 1, "给任务补充佐证材料（复制进本机的材料库，随后上传）",
	 f_evidence_add, cmd_evidence_add},
	{"evidence list", "[TASK]", 0, 1, 1, "列出佐证材料及其上传情况", f_none, cmd_evidence_list},
	{"evidence get", "HASH -o FILE", 1, 3, 1, "按校验值（可只给前几位）取出一份佐证材料",
	 f_evidence_get, cmd_evidence_get},
	{"submit", "TASK", 1, 1, 1, "申请销号", f_none, cmd_submit},
	{"review", "TASK", 1, 1, 1, "销号审核：同意或驳回（乡镇）", f_review, cmd_review},
	{"reinspect", "TASK", 1, 1, 1, "回头看：巩固或反弹（乡镇）", f_reinspect, cmd_reinspect},
	{"extend decide", "REQUEST", 1, 1, 1, "审批延期申请（乡镇）；REQUEST 为申请编号或任务编号",
	 f_extend_decide, cmd_extend_decide},
	{"extend", "TASK", 1, 1, 1, "申请延期", f_extend, cmd_extend},
	{"notice send", NULL, 0, 0, 1, "发出通报、提醒、预警或约谈（乡镇）", f_notice_send,
	 cmd_notice_send},
	{"notice list", NULL, 0, 0, 1, "列出收到或发出的通报", f_none, cmd_notice_list},
	{"conflicts", NULL, 0, 0, 1, "查看被并发修改覆盖的内容（两边的值、站点和时间）", f_none,
	 cmd_conflicts},
	/* needs_db 0: cmd_report opens the ledger itself unless --from. */
	{"report", "[-o FILE|DIR]", 0, 2, 0, "整改情况汇总：按村、按来源统计和整改台账（文本、JSON、CSV、Excel）",
	 f_report, cmd_report},
	{"sync", NULL, 0, 0, 1, "立即与乡镇同步一次：上传本机的修改，下载乡镇的决定和通报", f_sync,
	 cmd_sync},
	{"verify", NULL, 0, 0, 1, "核查校验链、数据与修改记录是否一致、数据库完整性", f_none,
	 cmd_verify},
};

int main(int argc, char **argv)
{
	return cli_main(commands, sizeof commands / sizeof commands[0], argc, argv);
}
