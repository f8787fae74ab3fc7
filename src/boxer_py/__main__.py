from boxer_py.cli.client import main

main()
