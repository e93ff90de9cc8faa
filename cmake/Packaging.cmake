# Install layout and the Debian package (issue 9), included from the
# top-level CMakeLists.txt after core/, plugins/ and man/ (which install the
# binary, the plugins, the SDK header and the man pages themselves).
#
# With CMAKE_INSTALL_PREFIX=/usr (the .deb) GNUInstallDirs gives /usr/bin,
# /usr/lib/<multiarch>, /etc and /var; the binary's compiled-in defaults
# (config file, plugins dir) come from the same variables, so they match.
#
#   bin/ingestd                              the daemon
#   LIBDIR/ingestd/plugins/KIND_NAME.so      plugins
#   SYSCONFDIR/ingestd/ingestd.toml          packaged config (a conffile)
#   SYSCONFDIR/ingestd/conf.d/               further *.toml, read in name order
#   LOCALSTATEDIR/lib/ingestd/               storage_dir (owned by user ingestd)
#   include/ingestd/plugin.h                 plugin SDK
#   LIBDIR/pkgconfig/ingestd-plugin.pc       plugin SDK (plugindir, abi_version)
#   /lib/systemd/system/ingestd.service      the unit (prefix/lib/systemd/system off /usr)
#   share/doc/ingestd/examples/              config examples, unit drop-in for ports < 1024

set(INGESTD_SYSCONF_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/ingestd)
set(INGESTD_STATE_DIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/ingestd)
if(CMAKE_INSTALL_PREFIX MATCHES "^/usr/?$")
  set(_unit_dir /lib/systemd/system) # Debian 12's systemdsystemunitdir
else()
  set(_unit_dir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()
set(INGESTD_SYSTEMD_UNIT_DIR ${_unit_dir} CACHE PATH "Where ingestd.service is installed")
set(_pkg ${PROJECT_SOURCE_DIR}/packaging)

# The packaged config. Never overwrite one that is there: `cmake --install`
# over a running system keeps the admin's edits (dpkg does the same for
# conffiles); the shipped version then goes beside it as ingestd.toml.dist.
install(
  CODE "
  set(_dir \"\$ENV{DESTDIR}${INGESTD_SYSCONF_DIR}\")
  file(MAKE_DIRECTORY \"\${_dir}/conf.d\")
  if(EXISTS \"\${_dir}/ingestd.toml\")
    message(STATUS \"Keeping: \${_dir}/ingestd.toml (the shipped one: ingestd.toml.dist)\")
    file(INSTALL \"${_pkg}/etc/ingestd.toml\" DESTINATION \"${INGESTD_SYSCONF_DIR}\"
         RENAME ingestd.toml.dist)
  else()
    # file(INSTALL) puts DESTDIR in front of the destination itself.
    file(INSTALL \"${_pkg}/etc/ingestd.toml\" DESTINATION \"${INGESTD_SYSCONF_DIR}\")
  endif()
  file(MAKE_DIRECTORY \"\$ENV{DESTDIR}${INGESTD_STATE_DIR}\")")

# The unit names /usr/bin/ingestd and /etc/ingestd; other prefixes get theirs.
file(READ ${_pkg}/systemd/ingestd.service _unit)
string(REPLACE "/usr/bin/ingestd" "${CMAKE_INSTALL_FULL_BINDIR}/ingestd" _unit "${_unit}")
string(REPLACE "/etc/ingestd/" "${INGESTD_SYSCONF_DIR}/" _unit "${_unit}")
string(REPLACE "/var/lib/ingestd" "${INGESTD_STATE_DIR}" _unit "${_unit}")
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/packaging/ingestd.service CONTENT "${_unit}")
install(FILES ${CMAKE_BINARY_DIR}/packaging/ingestd.service DESTINATION ${INGESTD_SYSTEMD_UNIT_DIR})

install(FILES ${_pkg}/systemd/low-port.conf ${PROJECT_SOURCE_DIR}/conf.d/examples/api-keys.toml
              ${PROJECT_SOURCE_DIR}/conf.d/examples/api-keys.example
              ${PROJECT_SOURCE_DIR}/conf.d/examples/fanout.toml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/plugin-hello
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples PATTERN "*.so" EXCLUDE PATTERN "*.o" EXCLUDE)

# ingestd-plugin.pc: paths relative to ${prefix} where they can be, so
# PKG_CONFIG_SYSROOT_DIR and relocated trees work.
file(STRINGS ${PROJECT_SOURCE_DIR}/core/include/ingestd/plugin.h _abi
     REGEX "^#define INGESTD_ABI_(MAJOR|MINOR) [0-9]+")
string(REGEX REPLACE ".*INGESTD_ABI_MAJOR ([0-9]+).*" "\\1" INGESTD_ABI_MAJOR "${_abi}")
string(REGEX REPLACE ".*INGESTD_ABI_MINOR ([0-9]+).*" "\\1" INGESTD_ABI_MINOR "${_abi}")
foreach(d INCLUDEDIR LIBDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
configure_file(${_pkg}/ingestd-plugin.pc.in ${CMAKE_BINARY_DIR}/packaging/ingestd-plugin.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/ingestd-plugin.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---- the .deb: cpack -G DEB in a build configured with
#      -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ingestd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "ingestd")
set(CPACK_PACKAGE_CONTACT "ingestd maintainers <ingestd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "collector daemon for JSON records sent over HTTP")
# The extended description; CPack puts the summary line in front.
set(CPACK_PACKAGE_DESCRIPTION
    "ingestd accepts JSON records that phones send over HTTP, validates and tags
them with input plugins, routes them through filters and queues them for
output plugins (Redis, Kinesis Data Firehose, Elasticsearch, stdout). Clients
are answered once their records are queued, never after a downstream round
trip. Includes the systemd unit and the plugin SDK (ingestd-plugin.pc).")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies from dpkg-shlibdeps over the binary and every plugin;
# adduser for postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${_pkg}/deb/postinst ${_pkg}/deb/prerm ${_pkg}/deb/postrm
                                       ${_pkg}/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Absolute destinations (/etc, /var, /lib/systemd) land in the package, not
# on the build host: install through DESTDIR with the real prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "Packaging: the .deb wants -DCMAKE_INSTALL_PREFIX=/usr (now ${CMAKE_INSTALL_PREFIX})")
endif()
include(CPack)
