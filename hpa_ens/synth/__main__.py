from ..cli import entry
from .generate import main

entry(main)
