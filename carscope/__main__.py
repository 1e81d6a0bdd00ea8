import sys

from carscope.commands.cli import main

sys.exit(main())
