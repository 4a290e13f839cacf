import sys

from latent4d.cli import main

sys.exit(main())
