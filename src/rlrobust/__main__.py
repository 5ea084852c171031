from rlrobust.cli import main

raise SystemExit(main())
