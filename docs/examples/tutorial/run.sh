#!/usr/bin/env bash
set -euxo pipefail
# Runs docs/tutorial.md end to end (as root, with oathtool and PostgreSQL 15 installed).
# Build first: go build -o airlock ./cmd/airlock
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
T=$(mktemp -d); cd $T; chown postgres $T
export PATH=/usr/lib/postgresql/15/bin:$PATH
A=${AIRLOCK:-$REPO/airlock}
[ -x "$A" ] || { echo "build first: go build -o airlock ./cmd/airlock" >&2; exit 1; }
# 1. a stand-in production database
runuser -u postgres -- initdb -D $T/pg -A trust -U postgres >/dev/null
runuser -u postgres -- pg_ctl -D $T/pg -o "-p 5544 -k $T -c listen_addresses=127.0.0.1" -l $T/pg.log start >/dev/null
psql -h 127.0.0.1 -p 5544 -U postgres -c "CREATE ROLE app_ro LOGIN PASSWORD 'ro-secret'" -c "CREATE DATABASE app" >/dev/null
psql -h 127.0.0.1 -p 5544 -U postgres -d app -c "CREATE TABLE orders(id int, total numeric); INSERT INTO orders VALUES (1, 9.99); GRANT SELECT ON orders TO app_ro" >/dev/null
$A server --http-addr 127.0.0.1:17090 --pg-addr 127.0.0.1:17432 --ssh-addr "" > server.log 2>&1 &
SRV=$!; trap "kill $SRV; runuser -u postgres -- pg_ctl -D $T/pg stop -m fast >/dev/null" EXIT
sleep 2
export AIRLOCK_SERVER=http://127.0.0.1:17090
export AIRLOCK_HOME=$T/admin
$A bootstrap --token-file airlock-data/bootstrap.token --user admin --password-stdin <<< 'admin password 123'
$A login --user admin --password-stdin <<< 'admin password 123'
OUT=$($A mfa add totp --output json); ID=$(echo "$OUT" | python3 -c 'import json,sys;print(json.load(sys.stdin)["factor"]["id"])'); SECRET=$(echo "$OUT" | python3 -c 'import json,sys,urllib.parse as u;print(u.parse_qs(u.urlparse(json.load(sys.stdin)["otpauth_uri"]).query)["secret"][0])')
$A mfa confirm $ID --otp $(oathtool --totp -b $SECRET)
export PROD_RO_PASSWORD=ro-secret
$A admin resources add prod-db --kind postgres --addr 127.0.0.1:5544 --database app --credential read=app_ro:env:PROD_RO_PASSWORD
$A policy apply -f "$REPO/docs/examples/tutorial/policy.yaml"
$A admin users add alice --group devs --password-stdin <<< 'alice password 123'
$A admin users add bob --group leads --password-stdin <<< 'bob password 1234'
for u in alice bob; do
  export AIRLOCK_HOME=$T/$u
  pw="alice password 123"; [ $u = bob ] && pw="bob password 1234"
  $A login --user $u --password-stdin <<< "$pw"
  OUT=$($A mfa add totp --output json); ID=$(echo "$OUT" | python3 -c 'import json,sys;print(json.load(sys.stdin)["factor"]["id"])'); S=$(echo "$OUT" | python3 -c 'import json,sys,urllib.parse as u;print(u.parse_qs(u.urlparse(json.load(sys.stdin)["otpauth_uri"]).query)["secret"][0])')
  $A mfa confirm $ID --otp $(oathtool --totp -b $S)
  echo $S > $T/$u.secret
done
export AIRLOCK_HOME=$T/alice
$A resources
$A request prod-db --access read --for 1h --reason "INC-42 refunds" --dry-run
REQ=$($A request prod-db --access read --for 1h --reason "INC-42 refunds" --output json | python3 -c 'import json,sys;print(json.load(sys.stdin)["request"]["id"])')
export AIRLOCK_HOME=$T/bob
$A requests --to-review
sleep 31
$A approve $REQ --comment "go ahead" --otp $(oathtool --totp -b $(cat $T/bob.secret))
export AIRLOCK_HOME=$T/alice
$A grants
$A psql prod-db -- -c "select * from orders"
$A psql prod-db -- -c "delete from orders" || echo "(refused as expected)"
export AIRLOCK_HOME=$T/admin
sleep 31
$A mfa verify --otp $(oathtool --totp -b $SECRET)
$A audit tail --action 'db.*'
$A sessions
$A audit verify
$A audit export -o $T/audit.jsonl
$A audit verify --file $T/audit.jsonl --pubkey airlock-data/audit.pub
