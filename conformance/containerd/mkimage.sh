#!/bin/bash
# conformance/containerd/mkimage.sh OUT.tar IMAGE-NAME [FILE...]
#
# Builds a tiny image offline: a busybox-static rootfs (/bin/busybox from
# Debian's busybox-static, with a symlink per applet: sh, wget, nslookup, nc,
# sleep, ip, ...) plus each FILE copied to /bin/ (e.g. conformance/probe/probe,
# which is static), packed as an OCI image layout tar whose index carries the
# annotation io.containerd.image.name=IMAGE-NAME, so that
# `ctr image import OUT.tar` registers it under that name (containerd 1.6).
# One uncompressed layer, linux/amd64 (the build machine's architecture).
set -eu
out=$1 name=$2
shift 2
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkimage: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
# A dynamic busybox (package busybox) would not run in the image.
! { command -v readelf >/dev/null && readelf -l "$bb" | grep -q INTERP; } || { echo "mkimage: $bb is not static (install busybox-static)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,run,share} "$work/layout/blobs/sha256"
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
for f in "$@"; do cp "$f" "$root/bin/"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
: >"$root/etc/resolv.conf"

# blob FILE MEDIATYPE: store FILE as a blob; sets $digest and $size
blob() {
	digest=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	size=$(stat -c %s "$1")
	mv "$1" "$work/layout/blobs/sha256/${digest#sha256:}"
}

arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$root" -cf "$work/layer.tar" .
blob "$work/layer.tar"
layer_digest=$digest layer_size=$size

cat >"$work/config.json" <<JSON
{"architecture":"$arch","os":"linux",
 "config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["$layer_digest"]}}
JSON
blob "$work/config.json"
config_digest=$digest config_size=$size

cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$layer_digest","size":$layer_size}]}
JSON
blob "$work/manifest.json"

cat >"$work/layout/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "digest":"$digest","size":$size,
 "platform":{"architecture":"$arch","os":"linux"},
 "annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
tar --numeric-owner --owner=0 --group=0 -C "$work/layout" -cf "$out" .
