#!/bin/sh
# mkdeb.sh BUILD VERSION - a Debian package of the build, with dpkg-deb alone
# (no debhelper): BUILD/tenantry_VERSION_ARCH.deb.
#
# Contents: /usr/bin/tenantry, libtenantry (.so with its soname links, .a),
# /usr/include/tenantry.h, tenantry.pc, the systemd units (/lib/systemd/system),
# the manual pages, /etc/default/tenantry (a commented conffile), and the
# maintainer scripts in dist/debian/: postinst creates the system user tenantry
# and /var/lib/tenantry, and starts or enables nothing; removal leaves the data.
#
# Depends comes from the libraries the binary and libtenantry.so are linked
# against (dpkg-shlibdeps where dpkg-dev is installed, else dpkg -S), plus
# adduser for postinst.  The binary opens libcurl and libcrypto only when it
# syncs (src/cli/lazylib.c): their packages are added by name below.
# TN_DEB_NOSTRIP=1 keeps the debugging symbols.
set -eu
build=$1
version=$2
top=$(cd "$(dirname "$0")/.." && pwd)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
work=$build/deb
root=$work/root
deb=$build/tenantry_${version}_${arch}.deb

rm -rf "$work"
mkdir -p "$root/DEBIAN"
${MAKE:-make} -s --no-print-directory -C "$top" install BUILD="$build" DESTDIR="$(cd "$work" && pwd)/root" \
    PREFIX=/usr LIBDIR="/usr/lib/$multiarch" UNITDIR=/lib/systemd/system >/dev/null

# Debian's layout: stripped objects, compressed manual pages, the soname link
# from ldconfig's trigger, documentation under /usr/share/doc.
if [ -z "${TN_DEB_NOSTRIP:-}" ]; then
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
        "$root/usr/bin/tenantry" "$root/usr/lib/$multiarch/libtenantry.so.$version"
    strip --strip-debug "$root/usr/lib/$multiarch/libtenantry.a"
fi
gzip -9n "$root"/usr/share/man/man1/*.1
install -d "$root/usr/share/doc/tenantry" "$root/etc/default"
if [ -f "$top/docs/operations.md" ]; then
    install -m 0644 "$top/docs/operations.md" "$root/usr/share/doc/tenantry/operations.md"
fi
install -m 0600 "$top/dist/debian/default" "$root/etc/default/tenantry"
for s in postinst prerm postrm; do
    install -m 0755 "$top/dist/debian/$s" "$root/DEBIAN/$s"
done
echo /etc/default/tenantry > "$root/DEBIAN/conffiles"
echo "activate-noawait ldconfig" > "$root/DEBIAN/triggers"

# Depends: the packages that hold the shared libraries linked in.
objs="$root/usr/bin/tenantry $root/usr/lib/$multiarch/libtenantry.so.$version"
depends=""
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    # dpkg-shlibdeps wants a source tree; a two-stanza control file is enough.
    tmp=$(mktemp -d)
    mkdir "$tmp/debian"
    printf 'Source: tenantry\n\nPackage: tenantry\nArchitecture: any\n' > "$tmp/debian/control"
    abs=""
    for o in $objs; do abs="$abs $(cd "$(dirname "$o")" && pwd)/$(basename "$o")"; done
    # shellcheck disable=SC2086
    depends=$(cd "$tmp" && dpkg-shlibdeps -O $abs 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    rm -rf "$tmp"
fi
if [ -z "$depends" ]; then
    for so in $(for o in $objs; do objdump -p "$o" | sed -n 's/^ *NEEDED *//p'; done | sort -u); do
        pkg=$({ dpkg -S "/usr/lib/$multiarch/$so" || dpkg -S "/lib/$multiarch/$so"; } 2>/dev/null |
              sed -n "1s/[:,].*//p")
        [ -n "$pkg" ] || { echo "mkdeb: no package holds $so" >&2; exit 1; }
        case ",$depends," in *", $pkg,"* | ",$pkg,"*) ;; *) depends="${depends:+$depends, }$pkg" ;; esac
    done
fi
# The libraries the binary opens only when it syncs (src/cli/lazylib.c): not
# linked, so no tool above sees them.
for pc in libcurl libcrypto; do
    so=$(objdump -p "$(pkg-config --variable=libdir "$pc")/$pc.so" 2>/dev/null | sed -n 's/^ *SONAME *//p')
    [ -n "$so" ] || { echo "mkdeb: cannot tell the soname of $pc" >&2; exit 1; }
    pkg=$({ dpkg -S "/usr/lib/$multiarch/$so" || dpkg -S "/lib/$multiarch/$so"; } 2>/dev/null |
          sed -n "1s/[:,].*//p")
    [ -n "$pkg" ] || { echo "mkdeb: no package holds $so" >&2; exit 1; }
    case ", $depends," in *", $pkg "* | *", $pkg,"*) ;; *) depends="${depends:+$depends, }$pkg" ;; esac
done
depends="$depends, adduser"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
{
    printf 'Package: tenantry\nVersion: %s\nArchitecture: %s\n' "$version" "$arch"
    printf 'Maintainer: %s <%s>\n' "${DEBFULLNAME:-tenantry developers}" "${DEBEMAIL:-tenantry@localhost}"
    printf 'Installed-Size: %s\nDepends: %s\n' "$size" "$depends"
    cat <<'EOF'
Section: database
Priority: optional
Description: embedded multi-tenant data store for edge appliances
 Several tenants' data in one SQLite file, with ownership enforced by the
 database itself; a C library, a command line, a local HTTP API, and a
 background sync engine that mirrors every change to DynamoDB and S3.
 .
 Installing creates the system user tenantry and /var/lib/tenantry; it starts
 and enables nothing.  Create the store with
 "runuser -u tenantry -- tenantry init --data /var/lib/tenantry", then
 "systemctl enable --now tenantry" (or tenantry-sync.timer).  Removing the
 package, even purging it, leaves /var/lib/tenantry and the user.
EOF
} > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
     xargs md5sum) > "$root/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
