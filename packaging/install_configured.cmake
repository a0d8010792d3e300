# install_configured.cmake -- runs inside `cmake --install`: writes tier.pc
# and the systemd units with the paths of *this* installation and installs
# them.  At configure time the prefix is not known yet (`--prefix` may
# change it), and these files must name absolute paths.
#
# In: CMAKE_INSTALL_PREFIX (the install-time prefix) and the TIER_* set by
# packaging/CMakeLists.txt just before.  DESTDIR is added by file(INSTALL).

function(tier_full out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

set(TIER_PREFIX "${CMAKE_INSTALL_PREFIX}")
tier_full(TIER_FULL_LIBDIR "${TIER_LIBDIR}")
tier_full(TIER_FULL_INCLUDEDIR "${TIER_INCLUDEDIR}")
tier_full(TIER_FULL_SBINDIR "${TIER_SBINDIR}")
tier_full(TIER_FULL_UNITDIR "${TIER_UNITDIR}")
# As GNUInstallDirs does: /usr's configuration lives in /etc, /opt/x's in
# /etc/opt/x, any other prefix's in <prefix>/etc.
if(TIER_PREFIX STREQUAL "/usr")
  set(TIER_SYSCONFDIR "/etc")
elseif(TIER_PREFIX MATCHES "^/opt/")
  set(TIER_SYSCONFDIR "/etc${TIER_PREFIX}")
else()
  set(TIER_SYSCONFDIR "${TIER_PREFIX}/etc")
endif()

configure_file("${TIER_SRC}/tier.pc.in" "${TIER_OUT}/installed/tier.pc" @ONLY)
file(INSTALL DESTINATION "${TIER_FULL_LIBDIR}/pkgconfig" TYPE FILE FILES
     "${TIER_OUT}/installed/tier.pc")
foreach(unit tierd.service tier-worker@.service)
  configure_file("${TIER_SRC}/systemd/${unit}.in" "${TIER_OUT}/installed/${unit}" @ONLY)
  file(INSTALL DESTINATION "${TIER_FULL_UNITDIR}" TYPE FILE FILES "${TIER_OUT}/installed/${unit}")
endforeach()
# The service user, created by systemd-sysusers at package install.
tier_full(TIER_FULL_SYSUSERSDIR "lib/sysusers.d")
file(INSTALL DESTINATION "${TIER_FULL_SYSUSERSDIR}" TYPE FILE RENAME tier.conf FILES
     "${TIER_SRC}/systemd/tier.sysusers")
