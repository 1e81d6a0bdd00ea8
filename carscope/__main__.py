import sys

from carscope.cli import main

sys.exit(main())
