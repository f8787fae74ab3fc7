import os
import sys

print(f"{os.environ.get('GREETING', 'Hi')} from {sys.implementation.name} {sys.version.split()[0]} on {sys.platform}!")
