from affectgpt.apps.score import main

raise SystemExit(main())
