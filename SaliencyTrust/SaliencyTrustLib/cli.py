"""``saliency-trust``: the command line of SaliencyTrust.

Each sub-command lives in the module that owns its work and provides two functions,
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args: argparse.Namespace) -> int``.
This file only lists them. Every command module is imported to build the parser, so a module keeps
its heavy imports inside ``run``; the one exception is ``saliency``, whose package imports torch
(``saliency-trust --help`` takes ~1.6 s, most of it torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

#: (command, module, one-line help). Modules are imported lazily.
COMMANDS = [
    ("evaluate", "SaliencyTrustLib.cohort.cli_evaluate", "evaluate the four trust criteria over a cohort (resumable, torchrun-ready) and write the report"),
    ("run-request", "SaliencyTrustLib.cohort.cli_request", "run one study request file (what the Slicer module writes) through the study pipeline, printing progress lines"),
    ("demo", "SaliencyTrustLib.cohort.cli_demo", "the main job on the synthetic cohort and the bundle's models: maps, four criteria, HTML report"),
    ("saliency", "SaliencyTrustLib.saliency.cli", "saliency map of one image (DICOM/NIfTI/NRRD) for a trained classifier, written as NIfTI + .npy"),
    ("synth", "SaliencyTrustLib.io.synth", "write the synthetic DICOM/NIfTI cohort with its ground truth and datalist"),
    ("prepare", "SaliencyTrustLib.io.datalist", "turn an RSNA Pneumonia or SIIM-ACR download into the datalist layout"),
    ("pacs", "SaliencyTrustLib.io.dicomweb", "DICOMweb PACS: list studies, pull a study/series to a folder, push DICOM results (STOW-RS)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saliency-trust",
        description="Assess whether saliency maps of a medical-image classifier can be trusted "
                    "(Arun et al., Radiology: AI 2021).",
    )
    from . import __version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module_name).add_arguments(command_parser)
        command_parser.set_defaults(_module=module_name)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except _bad_input_errors() as error:
        # bad input (a file, a folder, a server, an option) is one line naming it and the fix;
        # anything else is a bug and keeps its traceback
        from .io.dicomweb import mask_url

        message = " ".join(str(error).split()) or type(error).__name__
        print(f"saliency-trust {args.command}: {mask_url(message)}", file=sys.stderr)
        return 2


def _bad_input_errors() -> tuple:
    """The exception types that mean bad input, not a bug (imported lazily: they pull no torch)."""
    from .cohort.fingerprint import ConfigurationChangedError
    from .io.dicomweb import DicomWebError
    from .io.errors import InputError

    return (InputError, DicomWebError, ConfigurationChangedError, OSError, ValueError)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
