import sys

from facenormals3d.cli import main

# Guarded: a spawned worker process (facenormals3d.overlap.BackgroundProcess) imports the
# parent's __main__ module under another name, and must not run the command again.
if __name__ == "__main__":
    sys.exit(main())
