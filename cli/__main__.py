import sys

from llmref.cli.cli import main

sys.exit(main())
