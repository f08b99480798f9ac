from stuckgen.cli import main

raise SystemExit(main())
