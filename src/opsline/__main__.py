from opsline.cli import main

main()
