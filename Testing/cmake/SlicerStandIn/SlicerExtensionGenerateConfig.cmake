# Stand-in of Slicer's extension config generation: the metadata the Extensions Index requires.
foreach(_var EXTENSION_HOMEPAGE EXTENSION_CATEGORY EXTENSION_CONTRIBUTORS EXTENSION_DESCRIPTION
        EXTENSION_ICONURL EXTENSION_SCREENSHOTURLS EXTENSION_DEPENDS)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "Extension ${PROJECT_NAME}: ${_var} is not set")
  endif()
endforeach()
file(WRITE "${Slicer_STANDIN_RECORD_DIR}/extension_metadata.txt" "")
foreach(_var EXTENSION_HOMEPAGE EXTENSION_CATEGORY EXTENSION_CONTRIBUTORS EXTENSION_DESCRIPTION
        EXTENSION_ICONURL EXTENSION_SCREENSHOTURLS EXTENSION_DEPENDS)
  file(APPEND "${Slicer_STANDIN_RECORD_DIR}/extension_metadata.txt" "${_var}=${${_var}}\n")
endforeach()
