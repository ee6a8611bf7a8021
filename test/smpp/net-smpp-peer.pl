#!/usr/bin/perl
# A carrier peer built on Perl Net::SMPP (independent of the npm smpp package and of didgate's
# codec). Binds to didgate as a transceiver, sends deliver_sm PDUs, prints one line per answer.
# Usage: net-smpp-peer.pl HOST PORT SYSTEM_ID PASSWORD
use strict;
use warnings;
use Net::SMPP;
use Encode qw(encode);

my ($host, $port, $sid, $pw) = @ARGV;
$| = 1;
my ($smpp, $resp) = Net::SMPP->new_transceiver($host, port => $port, system_id => $sid,
    password => $pw, smpp_version => 0x34, timeout => 5);
if (!defined $smpp) { print "connect failed\n"; exit 2; }
print "bind status=$resp->{status}\n";
exit 0 if $resp->{status} != 0;

my %addr = (source_addr_ton => 1, source_addr_npi => 1, source_addr => '447700900123',
    dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => '15125550100');

sub send_dsm {
    my ($label, %f) = @_;
    my $r = $smpp->deliver_sm(%addr, %f);
    print "$label status=" . (defined $r ? $r->{status} : 'none') . "\n";
}

send_dsm('gsm', data_coding => 0, short_message => "Hello from Net::SMPP");
send_dsm('ucs2', data_coding => 8, short_message => encode('UTF-16BE', "perl \x{1F600} \x{00E9}"));
send_dsm('packed', data_coding => 0, short_message => Net::SMPP::pack_7bit("Packed GSM septets"));
send_dsm('part2', data_coding => 0, esm_class => 0x40, short_message => "\x05\x00\x03\x11\x02\x02" . "world");
send_dsm('part1', data_coding => 0, esm_class => 0x40, short_message => "\x05\x00\x03\x11\x02\x01" . "hello ");
send_dsm('receipt', esm_class => 0x04,
    short_message => "id:42 sub:001 dlvrd:001 submit date:2611221000 done date:2611221001 stat:DELIVRD err:000 text:x");
send_dsm('unrouted', data_coding => 0, short_message => "nobody", destination_addr => '0');

my $u = $smpp->unbind();
print "unbind status=" . (defined $u ? $u->{status} : 'none') . "\n";
