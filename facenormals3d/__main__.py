import sys

from facenormals3d.cli import main

sys.exit(main())
