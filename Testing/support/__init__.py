"""Test helpers shared by several test folders: a real Orthanc server and synthetic DICOM sources.

Imported by the ``conftest.py`` of ``Testing/dicom_out`` and ``Testing/pacs`` (which put ``Testing/``
on ``sys.path``, since the suite runs with ``--import-mode=importlib``).
"""
