#!/usr/bin/env node
/** The didgate command line (the package's `bin`); the commands live in src/cli/. */
import { run } from "./cli/index.js";

run(process.argv.slice(2));
