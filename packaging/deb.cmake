# The Debian package (cpack -G DEB in the build directory): everything `cmake --install`
# installs, under /usr with the config in /etc/moonpost, and maintainer scripts that create the
# moonpost user and /run/moonpost and enable and start the service where systemd runs.
set(CPACK_PACKAGE_NAME moonpost)
set(CPACK_PACKAGE_VENDOR moonpost)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "instant-messaging broker (libevent, Lua scripts, Redis)")
set(CPACK_PACKAGE_CONTACT "moonpost maintainers <moonpost@localhost>")
set(CPACK_GENERATOR DEB)
# install with DESTDIR and the prefix /usr, so that install_service.cmake sees the real prefix
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# the run-time libraries of the broker on Debian 12 (the -dev packages' runtime halves);
# adduser creates the user where systemd-sysusers is missing
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6, libevent-2.1-7, libevent-openssl-2.1-7, libevent-pthreads-2.1-7, liblua5.4-0, libmsgpackc2, libhiredis0.14, libsodium23, libssl3, libwslay1, adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "redis-server")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deb/conffiles ${CMAKE_CURRENT_BINARY_DIR}/deb/conffiles
               COPYONLY)
foreach(script postinst prerm postrm triggers)
  configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deb/${script} ${CMAKE_CURRENT_BINARY_DIR}/deb/${script}
                 COPYONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_BINARY_DIR}/deb/conffiles ${CMAKE_CURRENT_BINARY_DIR}/deb/postinst
    ${CMAKE_CURRENT_BINARY_DIR}/deb/prerm ${CMAKE_CURRENT_BINARY_DIR}/deb/postrm
    ${CMAKE_CURRENT_BINARY_DIR}/deb/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
