# Turns lib/db/sql/<noun>_<verb>.sql into one constant each in a generated header,
# klingq::db::sql::<noun>_<verb>; run at build time. Only lib/db's own sources include it:
# everything else calls the typed functions of lib/db.
file(GLOB files ${SQL_DIR}/*.sql)
list(SORT files)
set(out "// Generated from lib/db/sql/*.sql by lib/db/embed_statements.cmake. Do not edit.\n#pragma once\nnamespace klingq::db::sql {\n")
foreach(f IN LISTS files)
  get_filename_component(name ${f} NAME_WE)
  if(NOT name MATCHES "^[a-z_]+_[a-z_]+$")
    message(FATAL_ERROR "statement file ${f}: name it <noun>_<verb>.sql")
  endif()
  file(READ ${f} text)
  string(APPEND out "inline constexpr const char* ${name} = R\"klingq_sql(${text})klingq_sql\";\n")
endforeach()
string(APPEND out "}  // namespace klingq::db::sql\n")
file(WRITE ${OUTPUT}.tmp "${out}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
