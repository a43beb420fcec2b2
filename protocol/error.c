/*
 * error — names and Chinese texts for enum tly_err.
 *
 * The table is indexed by the code itself, so a lookup is one bounds check.
 * The English names are a wire contract: never change one once released.
 * The Chinese texts are for people who do not read logs (a village cadre at
 * a shared PC), so each says what is wrong and, where it helps, what to do.
 */
#include <string.h>

#include "error.h"

struct error_row {
	const char *name;
	const char *zh;
};

static const struct error_row error_table[] = {
	[TLY_OK] = {"ok", "成功"},

	[TLY_E_NOMEM] = {"out_of_memory", "电脑内存不足，请关闭其他程序后重试"},
	[TLY_E_IO] = {"io_error", "读写文件失败，请检查磁盘空间和文件权限"},
	[TLY_E_INTERNAL] = {"internal", "程序内部错误，请把这条信息告诉技术人员"},
	[TLY_E_USAGE] = {"usage", "命令用法不对，请查看帮助（加 --help）"},

	[TLY_E_TOO_LARGE] = {"too_large", "发送的数据太大，超过了允许的上限"},
	[TLY_E_INFLATE_LIMIT] = {"inflate_limit", "压缩数据解开后太大，超过了允许的上限，已拒收"},
	[TLY_E_BAD_COMPRESSION] = {"bad_compression", "压缩数据已损坏或不完整，无法解开"},
	[TLY_E_BAD_JSON] = {"bad_json", "收到的数据格式不对（不是有效的 JSON）"},
	[TLY_E_DUP_KEY] = {"duplicate_key", "收到的数据中同一项出现了两次"},
	[TLY_E_BAD_UTF8] = {"bad_utf8", "文字编码不对（不是 UTF-8），可能是乱码，请重新输入"},
	[TLY_E_LONE_SURROGATE] = {"lone_surrogate", "文字中有不完整的字符编码，可能是乱码"},
	[TLY_E_TOO_DEEP] = {"too_deep", "收到的数据层次嵌套太多，已拒收"},
	[TLY_E_BAD_TYPE] = {"bad_type", "收到的数据中某一项的类型不对"},
	[TLY_E_MISSING_FIELD] = {"missing_field", "收到的数据缺少必填项"},
	[TLY_E_UNKNOWN_FIELD] = {"unknown_field", "收到的数据中有本版本不认识的项"},
	[TLY_E_BAD_VALUE] = {"bad_value", "填写的内容不符合要求"},
	[TLY_E_TOO_MANY] = {"too_many", "条目数量太多，超过了允许的上限"},
	[TLY_E_FIELD_TOO_LONG] = {"field_too_long", "内容太长，超过了允许的字数，请删减后再保存"},
	[TLY_E_VERSION] = {"version_unsupported", "软件版本不一致，请升级台账软件"},
	[TLY_E_BAD_MSG_TYPE] = {"bad_message_type", "收到的消息类型不对"},
	[TLY_E_SEQ_ORDER] = {"seq_order", "修改记录的顺序号不连续或顺序错乱"},
	[TLY_E_SEQ_GAP] = {"seq_gap", "修改记录中间缺了一段，需要从缺的那一条开始重新发送"},
	[TLY_E_CHAIN] = {"chain_broken", "修改记录的校验链对不上，数据可能被改动过，请联系乡镇管理员"},
	[TLY_E_CLOCK_AHEAD] = {"clock_ahead", "电脑时间比实际时间快太多，请校正电脑的日期和时间"},
	[TLY_E_SITE_MISMATCH] = {"site_mismatch", "修改记录不是本站点产生的，已拒收"},

	[TLY_E_NOT_FOUND] = {"not_found", "没有找到这条记录"},
	[TLY_E_AMBIGUOUS] = {"ambiguous_id", "编号太短，对应了多条记录，请多输入几位"},
	[TLY_E_BAD_DATE] = {"bad_date", "日期格式不对，应为 YYYY-MM-DD，例如 2026-03-31"},
	[TLY_E_BAD_PERCENT] = {"bad_percent", "完成进度应在 0 到 100 之间"},
	[TLY_E_PERCENT_DOWN] = {"percent_decrease",
				"完成进度比上次填报的低，如确实下降，请写明原因"},
	[TLY_E_FORBIDDEN] = {"forbidden", "没有权限进行这项操作"},
	[TLY_E_BAD_STATUS_MOVE] = {"bad_status_move", "当前状态下不能进行这项操作（例如只有乡镇才能销号）"},
	[TLY_E_NOT_TALLY_DB] = {"not_tally_db", "这个文件不是台账数据库"},
	[TLY_E_DB_TOO_NEW] = {"db_too_new", "数据库是新版软件创建的，请先升级台账软件"},
	[TLY_E_DB] = {"db_error", "数据库读写出错，请检查磁盘后重试"},
	[TLY_E_EXISTS] = {"exists", "这条记录已经存在"},
	[TLY_E_NOT_INITIALISED] = {"not_initialised", "还没有建立台账数据库，请先运行 tally init"},
	[TLY_E_VERIFY] = {"verify_failed", "核查发现台账记录被改动或损坏，请联系乡镇管理员"},

	[TLY_E_UNAUTHORIZED] = {"unauthorized", "身份验证失败，请检查本机是否已加入乡镇台账"},
	[TLY_E_REVOKED] = {"revoked", "本机的使用权限已被乡镇收回，请联系乡镇管理员"},
	[TLY_E_RATE_LIMITED] = {"rate_limited", "操作太频繁，请稍后再试"},
	[TLY_E_MEDIA_TYPE] = {"unsupported_media_type", "发送的数据类型不被支持"},
	[TLY_E_JOIN_USED] = {"join_code_used", "这个加入码已经用过了，请向乡镇要一个新的"},
	[TLY_E_NETWORK] = {"network", "连不上乡镇服务器，请检查网络；修改已保存在本机，联网后会自动上传"},
	[TLY_E_TLS] = {"tls", "与乡镇服务器建立安全连接失败"},
	[TLY_E_PIN] = {"pin_mismatch", "服务器身份不符，可能连到了假冒的服务器，请联系乡镇管理员"},
	[TLY_E_HTTP_STATUS] = {"bad_status",
			       "服务器回应异常（可能需要先在浏览器里登录上网），请稍后再试"},
	[TLY_E_TIMEOUT] = {"timeout", "等待服务器回应超时，请稍后再试"},
	[TLY_E_REMOTE] = {"remote_error", "对方返回了无法识别的错误，请联系技术人员"},
	[TLY_E_BAD_REQUEST] = {"bad_request", "请求格式不对，服务器无法理解"},
	[TLY_E_METHOD] = {"method_not_allowed", "服务器不支持对这个地址进行这种操作"},
	[TLY_E_HEADER_TOO_LARGE] = {"header_too_large", "请求头太大，超过了允许的上限"},
	[TLY_E_LENGTH_REQUIRED] = {"length_required", "请求没有注明数据长度，服务器拒收"},
	[TLY_E_UNAVAILABLE] = {"unavailable", "服务器正忙或正在停止，请稍后再试；修改已保存在本机"},
	[TLY_E_CONFIG] = {"bad_config", "配置文件有错误，请按提示的行号修改"},
	[TLY_E_BLOB_TOO_LARGE] = {"blob_too_large", "单个文件超过上限，请压缩或拆分后再附上"},
	[TLY_E_BLOB_QUOTA] = {"blob_quota", "今日上传已达上限，剩下的文件明天继续上传"},
	[TLY_E_BLOB_HASH] = {"blob_hash_mismatch", "文件内容与校验值不符，未被接收"},
};

/* A code added to error.h without its row here fails the build, not a user. */
_Static_assert(sizeof error_table / sizeof error_table[0] == TLY_E__COUNT,
	       "error_table must have one row per enum tly_err value");

static const struct error_row *error_row_of(int err)
{
	if (err < 0 || err >= TLY_E__COUNT || !error_table[err].name)
		return NULL;
	return &error_table[err];
}

const char *error_name(int err)
{
	const struct error_row *r = error_row_of(err);
	return r ? r->name : "unknown";
}

const char *error_text_zh(int err)
{
	const struct error_row *r = error_row_of(err);
	return r ? r->zh : "未知错误，请联系技术人员";
}

int error_from_name(const char *name)
{
	if (!name)
		return TLY_E_REMOTE;
	for (int i = 0; i < TLY_E__COUNT; i++) {
		if (error_table[i].name && strcmp(error_table[i].name, name) == 0)
			return i;
	}
	return TLY_E_REMOTE;
}
