from handtools.cli import main

raise SystemExit(main())
