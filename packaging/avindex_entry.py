"""Entry point of the PyInstaller bundle: `avindex ...` (app.cli:main).

Started as `avindex-gui` (the symlink the bundle carries for desktop launchers) it opens
the GUI: `avindex-gui [ARGS]` is `avindex gui [ARGS]`.
"""
import multiprocessing
import os
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()   # the indexing worker is a spawned process
    from app.cli import main
    argv = sys.argv[1:]
    if os.path.basename(sys.argv[0]).endswith("-gui"):
        argv = ["gui", *argv]
    sys.exit(main(argv))
