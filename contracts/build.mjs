#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solc-js and writes Foundry-shaped artifacts
// (contracts/artifacts/<Name>.json: contractName, abi, bytecode.object, deployedBytecode.object)
// that Rust's alloy `sol!` macro reads.
//
//   node contracts/build.mjs           compile and (re)write the artifacts
//   node contracts/build.mjs --check   compile in memory; exit 1 if any committed artifact is
//                                      missing, different or unexpected
//
// Output is deterministic: source unit names are relative (`src/X.sol`,
// `@openzeppelin/contracts/...`), so no absolute path reaches the metadata hash.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const solc = require('solc');

const CONTRACTS_DIR = path.dirname(fileURLToPath(import.meta.url));
const SRC_DIR = path.join(CONTRACTS_DIR, 'src');
const ARTIFACTS_DIR = path.join(CONTRACTS_DIR, 'artifacts');
const OZ_DIR = path.dirname(require.resolve('@openzeppelin/contracts/package.json'));

// The deployable contracts, each in src/<Name>.sol. Abstract bases get no artifact.
const DEPLOYABLE = [
  'MockUSDC',
  'MarketToken',
  'StakeVault',
  'CredentialTokenFactory',
  'PersonaTokenFactory',
  'MarketAMM',
  'GovernanceSlashing',
  'SwapBatcher',
];

const OUTPUTS = [
  'abi',
  'evm.bytecode.object',
  'evm.bytecode.linkReferences',
  'evm.deployedBytecode.object',
  'evm.deployedBytecode.linkReferences',
];

const EXPECTED_SOLC = require('../package.json').devDependencies.solc;

function fail(message) {
  console.error(`contracts: ${message}`);
  process.exit(1);
}

// Resolves imports that are not passed in `sources` (OpenZeppelin, and src/ files for safety).
function findImports(unitName) {
  if (unitName.split('/').includes('..') || path.isAbsolute(unitName)) {
    return { error: `refusing import outside the project: ${unitName}` };
  }
  let file;
  if (unitName.startsWith('@openzeppelin/contracts/')) {
    file = path.join(OZ_DIR, unitName.slice('@openzeppelin/contracts/'.length));
  } else if (unitName.startsWith('src/')) {
    file = path.join(CONTRACTS_DIR, unitName);
  } else {
    return { error: `unknown import ${unitName} (only @openzeppelin/contracts/... and src/... resolve)` };
  }
  try {
    return { contents: fs.readFileSync(file, 'utf8') };
  } catch {
    return { error: `file not found for import ${unitName}` };
  }
}

function compile() {
  const version = solc.version();
  if (!version.startsWith(`${EXPECTED_SOLC}+`)) {
    fail(`solc-js ${version} is installed but package.json pins ${EXPECTED_SOLC}; run \`npm ci\``);
  }

  const files = fs.readdirSync(SRC_DIR).filter((f) => f.endsWith('.sol')).sort();
  if (files.length === 0) fail(`no .sol files in ${SRC_DIR}`);
  const sources = {};
  for (const f of files) {
    sources[`src/${f}`] = { content: fs.readFileSync(path.join(SRC_DIR, f), 'utf8') };
  }

  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      viaIR: false,
      // Outputs only for our own files (OpenZeppelin's are compiled but not emitted).
      outputSelection: Object.fromEntries(Object.keys(sources).map((unit) => [unit, { '*': OUTPUTS }])),
    },
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const diagnostics = output.errors ?? [];
  const errors = diagnostics.filter((e) => e.severity === 'error');
  for (const w of diagnostics.filter((e) => e.severity !== 'error')) {
    console.error(w.formattedMessage ?? w.message);
  }
  if (errors.length > 0) {
    for (const e of errors) console.error(e.formattedMessage ?? e.message);
    fail(`compilation failed with ${errors.length} error(s) (solc ${version})`);
  }

  const artifacts = new Map();
  for (const name of DEPLOYABLE) {
    const c = output.contracts?.[`src/${name}.sol`]?.[name];
    if (!c) fail(`contract ${name} not found in src/${name}.sol`);
    const bytecode = c.evm.bytecode.object;
    const deployed = c.evm.deployedBytecode.object;
    if (!bytecode || !deployed) fail(`${name} has no bytecode (abstract or interface?)`);
    const links = { ...c.evm.bytecode.linkReferences, ...c.evm.deployedBytecode.linkReferences };
    if (Object.keys(links).length > 0 || bytecode.includes('__$') || deployed.includes('__$')) {
      fail(`${name} needs library linking (${Object.keys(links).join(', ')}); use internal library functions only`);
    }
    const artifact = {
      contractName: name,
      abi: c.abi,
      bytecode: { object: `0x${bytecode}` },
      deployedBytecode: { object: `0x${deployed}` },
    };
    artifacts.set(`${name}.json`, `${JSON.stringify(artifact, null, 2)}\n`);
  }
  return { version, artifacts };
}

const check = process.argv.includes('--check');
const { version, artifacts } = compile();

if (check) {
  const problems = [];
  for (const [file, text] of artifacts) {
    const p = path.join(ARTIFACTS_DIR, file);
    if (!fs.existsSync(p)) problems.push(`missing: contracts/artifacts/${file}`);
    else if (fs.readFileSync(p, 'utf8') !== text) problems.push(`stale:   contracts/artifacts/${file}`);
  }
  if (fs.existsSync(ARTIFACTS_DIR)) {
    for (const f of fs.readdirSync(ARTIFACTS_DIR).sort()) {
      if (f.endsWith('.json') && !artifacts.has(f)) problems.push(`unexpected: contracts/artifacts/${f}`);
    }
  }
  if (problems.length > 0) {
    console.error(problems.join('\n'));
    fail(`${problems.length} artifact(s) out of date; run \`npm run contracts:build\` and commit contracts/artifacts/`);
  }
  console.log(`contracts: ${artifacts.size} artifacts up to date (solc ${version})`);
} else {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  for (const [file, text] of artifacts) fs.writeFileSync(path.join(ARTIFACTS_DIR, file), text);
  console.log(`contracts: wrote ${artifacts.size} artifacts to contracts/artifacts (solc ${version})`);
}
