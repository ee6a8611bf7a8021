#!/usr/bin/env node
/** The didgate command line (the package's `bin`); the commands live in src/cli/. */
import { holdHup } from "./cli/hup.js";

// a reload signal while `serve` loads its modules is kept for later, not fatal (cli/hup.ts)
if (process.argv[2] === "serve") holdHup();
const { run } = await import("./cli/index.js");
run(process.argv.slice(2));
