from sheetorders.cli import main

main()
