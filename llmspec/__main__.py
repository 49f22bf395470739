import sys

from llmspec.cli import main

sys.exit(main())
