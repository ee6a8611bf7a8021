#!/usr/bin/perl
# An app (ESME) built on Perl Net::SMPP (independent of the npm smpp package and of didgate's
# codec): binds to didgate as a transceiver, submits, cancels by address, queries, replaces with a
# new validity, and submits with an invalid schedule; prints one line per answer.
# Usage: net-smpp-app.pl HOST PORT SYSTEM_ID PASSWORD SOURCE DEST_CANCELLED DEST_KEPT
use strict;
use warnings;
use Net::SMPP;

my ($host, $port, $sid, $pw, $src, $gone, $kept) = @ARGV;
$| = 1;
my ($smpp, $resp) = Net::SMPP->new_transceiver($host, port => $port, system_id => $sid,
    password => $pw, smpp_version => 0x34, timeout => 5);
if (!defined $smpp) { print "connect failed\n"; exit 2; }
print "bind status=$resp->{status}\n";
exit 0 if $resp->{status} != 0;

my %from = (source_addr_ton => 1, source_addr_npi => 1, source_addr => $src);
sub st { my $r = shift; return defined $r ? $r->{status} : 'none' }

my @ids;
for my $to ($gone, $gone, $kept) {
    my $r = $smpp->submit_sm(%from, dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => $to,
        short_message => "perl to $to");
    my $id = defined $r ? $r->{message_id} : '';
    $id =~ s/\0+$//;
    push @ids, $id;
    print "submit status=" . st($r) . " id=$id\n";
}
my $c = $smpp->cancel_sm(service_type => '', message_id => '', %from,
    dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => $gone);
print "cancel status=" . st($c) . "\n";
for my $i (0 .. $#ids) {
    my $q = $smpp->query_sm(message_id => $ids[$i], %from);
    print "query $i status=" . st($q) . " state=" . (defined $q ? $q->{message_state} : 'none') . "\n";
}
my $rp = $smpp->replace_sm(message_id => $ids[2], %from, validity_period => '000000000002000R',
    registered_delivery => 1, short_message => 'perl replaced');
print "replace status=" . st($rp) . "\n";
my $bad = $smpp->submit_sm(%from, dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => $kept,
    schedule_delivery_time => '991399000000000+', short_message => 'never');
print "bad_schedule status=" . st($bad) . "\n";
my $u = $smpp->unbind();
print "unbind status=" . st($u) . "\n";
