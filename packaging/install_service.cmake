# Runs at install time (install(CODE) in packaging/CMakeLists.txt), when the prefix is known:
# writes the config and the systemd files with the installed paths. Prefix /usr (the Debian
# package) puts the config in /etc/moonpost and the units in /lib/systemd/system; any other
# prefix P in P/etc/moonpost and P/lib/systemd/system (systemd reads /usr/local/lib/systemd).
# An existing config is kept (it is the operator's); the new one is written beside it as
# broker.conf.new.

# DIR relative to the prefix unless it is absolute.
function(moonpost_full out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

# Writes TEXT to PATH under DESTDIR and records it in the install manifest.
function(moonpost_write path text)
  set(dest "$ENV{DESTDIR}${path}")
  message(STATUS "Installing: ${dest}")
  file(WRITE "${dest}" "${text}")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}")
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()

if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(conf_dir /etc/moonpost)
  set(unit_dir /lib/systemd/system)
else()
  set(conf_dir "${CMAKE_INSTALL_PREFIX}/etc/moonpost")
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
moonpost_full(bin_dir "${MOONPOST_BINDIR}")
moonpost_full(lib_dir "${MOONPOST_LIBDIR}")
moonpost_full(data_dir "${MOONPOST_DATADIR}")
moonpost_full(doc_dir "${MOONPOST_DOCDIR}")
set(scripts_dir "${data_dir}/moonpost/scripts")
set(plugins_dir "${lib_dir}/moonpost/plugins")

# The config: etc/broker.conf with its relative paths made the installed ones, and the admin
# socket in /run/moonpost. The log goes to stderr, which systemd hands to the journal.
file(READ "${MOONPOST_SOURCE_DIR}/etc/broker.conf" conf)
string(REGEX REPLACE "\nscript \\.\\./scripts/" "\nscript ${scripts_dir}/" conf "${conf}")
string(REGEX REPLACE "\n# plugin \\.\\./build/plugins/" "\n# plugin ${plugins_dir}/" conf "${conf}")
# the web chat, where the build had npm to make it (web/CMakeLists.txt)
if(EXISTS "$ENV{DESTDIR}${data_dir}/moonpost/web/index.html")
  string(REGEX REPLACE "\n# web_root \\.\\./build/webchat" "\nweb_root ${data_dir}/moonpost/web" conf "${conf}")
endif()
string(REGEX REPLACE "\n# admin_socket /run/moonpost/admin.sock" "\nadmin_socket /run/moonpost/admin.sock"
       conf "${conf}")
if(NOT conf MATCHES "\nadmin_socket /run/moonpost/admin.sock")
  message(FATAL_ERROR "etc/broker.conf: no '# admin_socket /run/moonpost/admin.sock' line to enable")
endif()
string(REGEX MATCH "\n[a-z_]+ [^\n]*\\.\\./[^\n]*" relative "${conf}")
if(relative)
  string(STRIP "${relative}" relative)
  message(FATAL_ERROR "etc/broker.conf: '${relative}' would point outside the install")
endif()
set(conf "# Installed configuration: the scripts are in ${scripts_dir},
# the plugins in ${plugins_dir}, the admin socket is /run/moonpost/admin.sock
# (moonpostctl --socket ...), and the log goes to stderr (the journal under systemd).
${conf}")
if(EXISTS "$ENV{DESTDIR}${conf_dir}/broker.conf")
  message(STATUS "Keeping ${conf_dir}/broker.conf")
  moonpost_write("${conf_dir}/broker.conf.new" "${conf}")
else()
  moonpost_write("${conf_dir}/broker.conf" "${conf}")
endif()

foreach(unit moonpost.service moonpost@.service)
  file(READ "${MOONPOST_SOURCE_DIR}/etc/${unit}.in" text)
  string(REPLACE "@BINDIR@" "${bin_dir}" text "${text}")
  string(REPLACE "@CONFDIR@" "${conf_dir}" text "${text}")
  string(REPLACE "@DOCDIR@" "${doc_dir}" text "${text}")
  moonpost_write("${unit_dir}/${unit}" "${text}")
endforeach()

file(READ "${MOONPOST_SOURCE_DIR}/etc/moonpost.sysusers" text)
moonpost_write("${CMAKE_INSTALL_PREFIX}/lib/sysusers.d/moonpost.conf" "${text}")
file(READ "${MOONPOST_SOURCE_DIR}/etc/moonpost.tmpfiles" text)
moonpost_write("${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d/moonpost.conf" "${text}")
