# A small stand-in of Slicer's build tree for configuring the extension in CI (no Slicer build).
#
# find_package(Slicer) with -DSlicer_DIR=<this folder> loads this file. It provides what the
# extension's CMakeLists.txt use: Slicer_USE_FILE (the scripted-module macros),
# Slicer_EXTENSION_GENERATE_CONFIG, Slicer_EXTENSION_CPACK and the module directory variables.
# Like the real macros, a listed script or resource that does not exist stops the configuration.
# What was listed is recorded in ${CMAKE_BINARY_DIR}/SlicerStandIn/ for the test to compare with
# the files on disk.

set(Slicer_FOUND TRUE)
set(Slicer_VERSION "5.8.0")
set(Slicer_VERSION_MAJOR 5)
set(Slicer_VERSION_MINOR 8)
set(Slicer_USE_FILE "${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake")
set(Slicer_EXTENSION_GENERATE_CONFIG "${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionGenerateConfig.cmake")
set(Slicer_EXTENSION_CPACK "${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionCPack.cmake")
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-${Slicer_VERSION_MAJOR}.${Slicer_VERSION_MINOR}/qt-scripted-modules")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "${Slicer_QTSCRIPTEDMODULES_LIB_DIR}")
set(Slicer_STANDIN_RECORD_DIR "${CMAKE_BINARY_DIR}/SlicerStandIn")
if(NOT DEFINED BUILD_TESTING)
  set(BUILD_TESTING ON)
endif()
