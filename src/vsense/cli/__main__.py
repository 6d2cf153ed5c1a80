from vsense.cli.main import main

main()
