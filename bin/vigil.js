#!/usr/bin/env node
// Entry point of the `vigil` command; the code lives in services/cli (compiled to dist/).
import '../dist/services/cli/main.js';
