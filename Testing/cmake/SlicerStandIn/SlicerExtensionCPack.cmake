# Stand-in of Slicer's extension packaging: records that the extension reached packaging.
file(APPEND "${Slicer_STANDIN_RECORD_DIR}/extension_metadata.txt" "CPACK=${PROJECT_NAME}\n")
