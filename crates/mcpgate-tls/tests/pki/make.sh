#!/usr/bin/env bash
# Regenerates the test-only PKI of mcpgate-tls's unit tests (valid for 100 years):
# a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a second,
# unrelated key. Never use these anywhere but in tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key.pem -out ca.pem -days $days \
  -subj "/CN=mcpgate test CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
for who in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $who.key.pem -out $who.csr -subj "/CN=mcpgate test $who" 2>/dev/null
done
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > server.ext
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > client.ext
for who in server client; do
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key.pem -CAcreateserial -out $who.pem -days $days -extfile $who.ext 2>/dev/null
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key.pem 2>/dev/null
rm -f ./*.csr ./*.ext ./*.srl
