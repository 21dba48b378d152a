# Install layout beyond the binary, man page, completion and tokenizer data (declared by
# their own targets), and the .deb made by CPack: `cpack -G DEB` in a build directory.
install(FILES ${CMAKE_SOURCE_DIR}/contrib/systemd/lens-embed.service
  DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/contrib/systemd/lens-embed.env.example
  ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/OPERATIONS.md
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/lens-embed)

set(CPACK_PACKAGE_NAME lens-embed)
set(CPACK_PACKAGE_VENDOR "lens-embed")
set(CPACK_PACKAGE_CONTACT "lens-embed maintainers <lens-embed@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "keeps vector embeddings of chat messages in sync with their database")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The shared libraries it links (libpq, libcurl, libsqlite3, ...) become Depends.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Debug info stays in the build tree: the packaged binary is stripped (23 MB -> a few).
set(CPACK_STRIP_FILES ON)
include(CPack)
