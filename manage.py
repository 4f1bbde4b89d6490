#!/usr/bin/env python3
"""chatadmin's command line; see `python manage.py --help`."""

import sys

from chatadmin.cli import main

if __name__ == "__main__":
    sys.exit(main())
