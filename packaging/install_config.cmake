# Runs at install time (cmake --install, cpack), after install(CODE) set KLINGQ_SOURCE_DIR,
# KLINGQ_STAGING_DIR, KLINGQ_BINDIR and KLINGQ_DOCDIR. CMAKE_INSTALL_PREFIX is the prefix
# of this install (--prefix wins over the configured one); file(INSTALL) adds DESTDIR.
#
# The config directory, as GNUInstallDirs decides it but at install time: /etc for the
# prefix /usr, /etc/opt/X for /opt/X, else PREFIX/etc.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc "/etc")
elseif(prefix MATCHES "^/opt/")
  set(etc "/etc${prefix}")
else()
  set(etc "${prefix}/etc")
endif()

# The example always; klingq.yaml (the unit's --config, a copy of the example) only when
# there is none, so that an install never overwrites an operator's config. The .deb
# ships klingq.yaml as a conffile, which dpkg protects the same way on upgrades.
file(INSTALL "${KLINGQ_SOURCE_DIR}/config/klingq.example.yaml" DESTINATION "${etc}/klingq")
if(NOT EXISTS "$ENV{DESTDIR}${etc}/klingq/klingq.yaml")
  file(INSTALL "${KLINGQ_SOURCE_DIR}/config/klingq.example.yaml" DESTINATION "${etc}/klingq" RENAME klingq.yaml)
endif()

# The unit names the binary, the config, the credential file and the README by path:
# rewritten for this prefix (for /usr the file stays as it is in systemd/).
file(READ "${KLINGQ_SOURCE_DIR}/systemd/klingqd.service" unit)
string(REPLACE "/usr/bin/klingqd" "${prefix}/${KLINGQ_BINDIR}/klingqd" unit "${unit}")
string(REPLACE "/usr/share/doc/klingq/" "${prefix}/${KLINGQ_DOCDIR}/" unit "${unit}")
string(REPLACE "/etc/klingq/" "${etc}/klingq/" unit "${unit}")
# One staging file per destination, so that two installs at once do not share it.
string(MD5 staging "$ENV{DESTDIR}|${prefix}")
file(WRITE "${KLINGQ_STAGING_DIR}/${staging}/klingqd.service" "${unit}")
file(INSTALL "${KLINGQ_STAGING_DIR}/${staging}/klingqd.service" DESTINATION "${prefix}/lib/systemd/system")
