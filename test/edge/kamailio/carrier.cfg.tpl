#!KAMAILIO
# Kamailio 5.x as a carrier SBC in front of didgate (test/edge/sip-kamailio.test.ts): record-routes
# and relays every INVITE to didgate, loose-routes in-dialog requests, answers OPTIONS itself.

debug=2
log_stderror=yes
children=1
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:@PORT@
server_signature=no

loadpath "@MPATH@"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"

modparam("tm", "fr_timer", 3000)
modparam("tm", "fr_inv_timer", 10000)

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (is_method("OPTIONS") && !has_totag()) {
		sl_send_reply("200", "OK");
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
	record_route();
	$du = "sip:127.0.0.1:@DIDGATE@";
	if (!t_relay()) sl_reply_error();
	exit;
}
