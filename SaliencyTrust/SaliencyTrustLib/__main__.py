"""``python -m SaliencyTrustLib`` = ``saliency-trust``."""
import sys

from .cli import main

sys.exit(main())
