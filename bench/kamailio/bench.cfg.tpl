#!KAMAILIO
# Kamailio reference proxy for bench/sip.ts: one UDP worker, the same DIDs in an mtree (loaded
# from a db_text directory), record_route + t_relay. Placeholders @...@ are filled by the bench.

debug=1
log_stderror=yes
memdbg=5
memlog=5
children=1
# the same UDP receive buffer didgate asks for (8 MiB; the kernel caps it at net.core.rmem_max):
# with Kamailio's default (256 KiB) its socket drops datagrams in bursts on a shared 2-core box
maxbuffer=8388608
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:@PORT@
server_signature=no
user_agent_header=""

loadpath "@MPATH@"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "db_text.so"
loadmodule "mtree.so"

modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 1)
modparam("tm", "fr_timer", 4000)
modparam("tm", "fr_inv_timer", 60000)
modparam("mtree", "db_url", "text://@DBDIR@")
modparam("mtree", "char_list", "+0123456789")
modparam("mtree", "mtree", "name=dids;dbtable=mtree;type=0")
modparam("mtree", "pv_value", "$avp(tv)")

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (has_totag()) {
		if (loose_route()) {
			t_relay();
			exit;
		}
		if (is_method("ACK")) {
			if (t_check_trans()) t_relay();
			exit;
		}
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) t_relay();
		exit;
	}
	t_check_trans();
	if (!is_method("INVITE")) {
		sl_send_reply("405", "Method Not Allowed");
		exit;
	}
	if (!mt_match("dids", "$rU", "0")) {
		sl_send_reply("404", "Not Found");
		exit;
	}
	record_route();
	$ru = "sip:" + $rU + "@" + $avp(tv);
	if (!t_relay()) sl_reply_error();
	exit;
}
