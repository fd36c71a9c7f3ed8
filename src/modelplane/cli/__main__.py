"""``python -m modelplane.cli``: the same as the ``modelplane`` console script."""

from modelplane.cli import main

if __name__ == "__main__":
    main()
