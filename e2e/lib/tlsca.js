// A certificate authority made by the test with the openssl command, and a
// directory updated the way the kubelet updates a mounted Kubernetes Secret
// (cert-manager's renewals reach a pod this way): each version in a new
// directory, the ..data symlink switched to it by one rename, tls.crt and
// tls.key symlinks through ..data (AtomicWriter in
// kubernetes/pkg/volume/util/atomic_writer.go).

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rename, rm, symlink, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

async function openssl(args, cwd) {
  try {
    await execFileP("openssl", args, { cwd });
  } catch (err) {
    throw new Error(`openssl ${args.join(" ")}: ${err.stderr || err.message}`);
  }
}

/**
 * A new CA in a temp dir. caFile is its certificate (for NODE_EXTRA_CA_CERTS,
 * curl --cacert); issue(name) makes a server pair for 127.0.0.1 and
 * localhost and returns {cert, key, serial}: PEM text and the serial number
 * in the upper-case hex Node's getPeerCertificate() reports.
 */
export async function makeCA(name = "entraproxy e2e CA") {
  const dir = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-ca-"));
  await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  await writeFile(path.join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n");
  let n = 0;
  return {
    dir,
    caFile: path.join(dir, "ca.pem"),
    async issue(cn) {
      n++;
      // Positive, no leading zero nibble, an even number of digits: the
      // form getPeerCertificate() prints.
      const bytes = randomBytes(12);
      bytes[0] = 0x10 + (bytes[0] % 0x60);
      const serial = bytes.toString("hex").toUpperCase();
      await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", `s${n}.key`, "-out", `s${n}.csr`, "-subj", `/CN=${cn}`], dir);
      await openssl(["x509", "-req", "-in", `s${n}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", `0x${serial}`,
        "-days", "1", "-extfile", "server.ext", "-out", `s${n}.crt`], dir);
      return {
        cert: await readFile(path.join(dir, `s${n}.crt`), "utf8"),
        key: await readFile(path.join(dir, `s${n}.key`), "utf8"),
        serial,
      };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A Secret-volume directory; write(pair) publishes the next version. */
export async function secretVolume() {
  const dir = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-secret-"));
  let version = 0;
  return {
    dir,
    certFile: path.join(dir, "tls.crt"),
    keyFile: path.join(dir, "tls.key"),
    async write({ cert, key }) {
      version++;
      const name = `..version_${version}`;
      await mkdir(path.join(dir, name));
      await writeFile(path.join(dir, name, "tls.crt"), cert, { mode: 0o600 });
      await writeFile(path.join(dir, name, "tls.key"), key, { mode: 0o600 });
      await symlink(name, path.join(dir, "..data_tmp"));
      await rename(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
      if (version === 1) {
        await symlink(path.join("..data", "tls.crt"), path.join(dir, "tls.crt"));
        await symlink(path.join("..data", "tls.key"), path.join(dir, "tls.key"));
      } else {
        await rm(path.join(dir, `..version_${version - 1}`), { recursive: true });
      }
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
