#!/bin/sh
# make-certs.sh DIR - throwaway test PKI for the TLS tests, made at test time
# (private keys are never committed). Creates in DIR:
#   ca.pem ca.key            test CA
#   other-ca.pem other-ca.key  a second CA that nobody trusts
#   server.pem server.key    server cert for localhost, 127.0.0.1 and ::1 (CN localhost)
#   server-chain.pem         server key + cert + CA cert (for *_chain_files)
#   other-server.pem/.key    server cert for localhost signed by other-ca
#   client.pem client.key    client cert (CN client.test)
#   capath/                  the test CA as a hashed directory (for *_CApath)
set -eu
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
days=2

ca() {  # ca NAME CN
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" \
        -days "$days" -subj "/O=Kite Test/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() {  # leaf NAME CN CA EXT
    openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" \
        -subj "/O=Kite Test/CN=$2" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
        -days "$days" -out "$1.pem" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:client.test'

ca ca "Kite Test CA"
ca other-ca "Kite Other CA"
leaf server localhost ca "$server_ext"
leaf other-server localhost other-ca "$server_ext"
leaf client client.test ca "$client_ext"
cat server.key server.pem ca.pem > server-chain.pem
mkdir -p capath
cp ca.pem capath/ca.pem
openssl rehash capath 2>/dev/null
chmod 600 ./*.key server-chain.pem
chmod 644 ./*.pem capath/*
chmod 755 capath
chmod 600 server-chain.pem
