#!/usr/bin/env node
// Reproducible build of the wmproof registry: solc-js (pinned in package.json) through standard JSON, with a
// fixed source-unit name, no metadata hash in the bytecode, fixed optimizer settings and an EVM version that
// py-evm runs ("prague"; solc 0.8.37 defaults to osaka). The same inputs give the same bytes from any
// directory, so CI rebuilds and compares with the committed artifact (`node contracts/build.js --check`).
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const CONTRACT = "WmproofRegistry";
const SOURCE_NAME = "contracts/WmproofRegistry.sol";
const here = __dirname;
const artifactPath = path.join(here, "artifacts", CONTRACT + ".json");
const source = fs.readFileSync(path.join(here, CONTRACT + ".sol"), "utf8");
const settings = {
  evmVersion: "prague",
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const output = JSON.parse(
  solc.compile(JSON.stringify({ language: "Solidity", sources: { [SOURCE_NAME]: { content: source } }, settings }))
);
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const compiled = output.contracts[SOURCE_NAME][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  sourceName: SOURCE_NAME,
  sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
  compiler: "solc-js " + solc.version(),
  settings: { evmVersion: settings.evmVersion, optimizer: settings.optimizer, metadata: settings.metadata },
  abi: compiled.abi,
  bytecode: "0x" + compiled.evm.bytecode.object,
  deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
};
const text = JSON.stringify(artifact, null, 2) + "\n";
if (process.argv.includes("--check")) {
  const committed = fs.existsSync(artifactPath) ? fs.readFileSync(artifactPath, "utf8") : "";
  if (committed !== text) {
    console.error(`${path.relative(process.cwd(), artifactPath)} differs from a fresh build: run \`npm run build\``);
    process.exit(1);
  }
  console.log(`${CONTRACT}: the rebuild is byte-identical to the committed artifact`);
} else {
  fs.mkdirSync(path.dirname(artifactPath), { recursive: true });
  fs.writeFileSync(artifactPath, text);
  console.log(`wrote ${path.relative(process.cwd(), artifactPath)} (${compiled.evm.deployedBytecode.object.length / 2} bytes of runtime code)`);
}
