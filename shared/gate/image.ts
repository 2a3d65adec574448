/**
 * Identifying the image a gate judges, from what the pipeline put in the approval's CustomData or in its
 * execution variables. The gate judges a digest; a tag is resolved once, when the approval starts,
 * because a tag can be moved to another image while the gate waits.
 */

import { clipUnits, wellFormed } from '../text.js';

const DIGEST = /^sha256:[a-f0-9]{64}$/;
// ECR's own pattern for repository names (its API model), `__` and runs of `-` included.
const REPOSITORY = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*';
/** An ECR repository's bare name (`payments/api`), as ECR's API model allows one (2 to 256 characters). */
export const REPOSITORY_NAME = new RegExp(`^(?=.{2,256}$)${REPOSITORY}$`);
// ECR takes tags of up to 300 characters (Docker's grammar says 128; ECR's model says 300).
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}';
// A tag or digest ends where no character of its own can follow: a longer one is no match, never cut short
// into one that may name another image. Punctuation after a whole reference (a sentence's full stop, a
// slash) ends it, except a `.` right after a tag: a tag may end in `.` (`v1.` is one), so `…:1.4.2.` names the
// tag `1.4.2.`, which the gate does not find and escalates, rather than judge `1.4.2`, another image. After a
// tag, `@` may only start a whole digest: a malformed one (`:v1@sha256:<65 hex>`, `@sha512:…`) is no match,
// not dropped with the tag judged in its place; a second `:` is no match either.
const DIGEST_END = '(?![A-Za-z0-9_])';
const TAG_END = `(?![A-Za-z0-9_.:-]|@(?!sha256:[a-f0-9]{64}${DIGEST_END}))`;
// A private ECR image URI, with a tag, a digest, or both (`repo:tag@sha256:…`, as `docker inspect` prints),
// on the IPv4 host (`<account>.dkr.ecr.<region>.amazonaws.com`) or the dual-stack one that IPv6 clients
// pull from (`<account>.dkr-ecr.<region>.on.aws`): both name the same registry.
// It starts where no longer name can have begun: not inside a longer account number (a 13-digit one is not the
// gate's), nor in a path under another host (`evil.example.com/<account>.dkr.ecr…` is that host's image);
// after `//` (a URL's scheme) it may.
const REFERENCE_START = '(?<![A-Za-z0-9_.@-])(?<![^/]/)';
const ECR_URI = new RegExp(
  `${REFERENCE_START}(?<registry>\\d{12})\\.(?:dkr\\.ecr(?:-fips)?\\.(?<region>[a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?|dkr-ecr(?:-fips)?\\.(?<dualStackRegion>[a-z0-9-]+)\\.on\\.aws)/` +
    `(?<repository>${REPOSITORY})(?::(?<tag>${TAG})${TAG_END})?(?:@(?<digest>sha256:[a-f0-9]{64})${DIGEST_END})?`,
);
// Any other registry's image with a tag or digest (`ghcr.io/org/app:1`, `public.ecr.aws/x/y@sha256:…`,
// `registry:5000/app:1`): a host with a dot or a port, whose last label starts with a letter (not a time's
// `10:30/11:00`), then a path. Tollgate cannot judge it, and an approval
// that names it beside an ECR image would let it through unjudged.
const OTHER_REGISTRY_IMAGE = new RegExp(
  // Never after a `/`: an image reference has no scheme, and `https://host/path:12` is a link (a build's log,
  // a line of source), not an image.
  `(?<![A-Za-z0-9_.@/-])(?<host>(?:[a-z0-9-]+\\.)+[a-z][a-z0-9-]*(?::\\d{1,5})?|[a-z][a-z0-9-]*:\\d{1,5})/` +
    `(?<path>${REPOSITORY})(?::${TAG}${TAG_END}|@sha256:[a-f0-9]{64}${DIGEST_END})`,
  'g',
);
const ECR_PRIVATE_HOST = /^\d{12}\.(?:dkr\.ecr|dkr-ecr)/;
const BARE_REFERENCE = new RegExp(
  `^(?<repository>${REPOSITORY})(?::(?<tag>${TAG}))?(?:@(?<digest>sha256:[a-f0-9]{64}))?$`,
);

/** What the pipeline named: a digest to judge, or a tag still to resolve. */
export interface ImageReference {
  readonly repository: string;
  readonly registryId: string | undefined;
  /** The region of an image URI (a bare reference or a JSON name has none: the gate's own). */
  readonly region: string | undefined;
  readonly digest: string | undefined;
  readonly tag: string | undefined;
  /** Where it was found, for the record: `CustomData`, `variable IMAGE_URI`, … */
  readonly from: string;
  readonly text: string;
}

export type Identification =
  | { readonly ok: true; readonly reference: ImageReference }
  | { readonly ok: false; readonly problem: string };

/** Reads an image from CustomData: an image URI anywhere in the text, or a JSON object naming one. */
export function imageFromCustomData(customData: string | undefined): Identification {
  if (customData === undefined || customData.trim() === '') {
    return { ok: false, problem: 'the approval action has no CustomData naming the image' };
  }
  const text = customData.trim();
  if (text.includes('#{')) {
    return {
      ok: false,
      problem: `CustomData (${describe(text)}) holds ${unresolved(text)}: expected it resolved to an ECR image URI; check the namespace and name of the variable in the approval action's CustomData`,
    };
  }
  // One approval judges one image: text naming two (in JSON too: any key, or two URIs in one value) would have
  // the first judged and the other let through.
  // The same image said twice (its digest, or its tag when no digest is given) is one image.
  const named = new Map<string, string>();
  // A URI without tag or digest is Docker's `:latest`: another image when its repository is not one named
  // with a tag or digest (a mention of the judged image's repository is not).
  const untagged = new Map<string, string>();
  const repositories = new Set<string>();
  for (const m of text.matchAll(new RegExp(ECR_URI.source, 'g'))) {
    const g = m.groups;
    if (g === undefined) continue;
    const repository = `${g.registry}/${g.region ?? g.dualStackRegion}/${g.repository}`;
    if (g.tag === undefined && g.digest === undefined) {
      untagged.set(repository, m[0]);
      continue;
    }
    repositories.add(repository);
    named.set(`${repository}${g.digest ?? `:${g.tag}`}`, m[0]);
  }
  for (const [repository, uri] of untagged) if (!repositories.has(repository)) named.set(repository, uri);
  const elsewhere: string[] = [];
  for (const m of text.matchAll(OTHER_REGISTRY_IMAGE)) {
    if (!ECR_PRIVATE_HOST.test(m.groups?.host ?? '')) elsewhere.push(m[0]);
  }
  // Only another registry's image: said so, rather than read as a repository of that name in ECR.
  if (named.size === 0 && elsewhere.length === 1) {
    return {
      ok: false,
      problem: `CustomData names an image outside this account's ECR registry (${clip(elsewhere[0]!)}); Tollgate judges images of ECR private repositories only`,
    };
  }
  for (const image of elsewhere) named.set(image, image);
  if (named.size > 1) {
    return {
      ok: false,
      problem: `CustomData names ${named.size} images (${[...named.values()].slice(0, 3).map(clip).join(', ')}${named.size > 3 ? ', …' : ''}); Tollgate judges one image per approval action: give each image its own`,
    };
  }
  if (text.startsWith('{')) {
    const fromJson = imageFromJson(text);
    if (fromJson) return fromJson;
  }
  const reference = matchReference(text, 'CustomData');
  if (reference) return { ok: true, reference };
  return {
    ok: false,
    problem: `CustomData (${quoted(text, IMAGE_SHAPED)}) names no ECR image by tag or digest: expected an image URI <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:… or :<tag>, or JSON with imageUri, or repositoryName with imageDigest or imageTag`,
  };
}

/** The fallback: the execution's variables `IMAGE_URI`, or `IMAGE_DIGEST` with `IMAGE_REPOSITORY`. */
export function imageFromVariables(variables: Readonly<Record<string, string>>): Identification {
  const uri = variables.IMAGE_URI;
  if (uri !== undefined) {
    const reference = matchReference(uri.trim(), 'variable IMAGE_URI');
    if (reference) return { ok: true, reference };
    return {
      ok: false,
      problem: `the pipeline variable IMAGE_URI (${quoted(uri, IMAGE_SHAPED)}) is not an ECR image URI: expected <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:… or :<tag>`,
    };
  }
  const digest = variables.IMAGE_DIGEST?.trim();
  const repository = (variables.IMAGE_REPOSITORY ?? variables.REPOSITORY_NAME)?.trim();
  if (digest !== undefined) {
    if (!DIGEST.test(digest)) {
      return {
        ok: false,
        problem: `the pipeline variable IMAGE_DIGEST (${quoted(digest, DIGEST_SHAPED)}) is not a sha256 digest: expected sha256: and 64 lowercase hex digits`,
      };
    }
    if (repository === undefined || !new RegExp(`^${REPOSITORY}$`).test(repository)) {
      return {
        ok: false,
        problem: 'the pipeline variable IMAGE_DIGEST has no IMAGE_REPOSITORY variable naming its repository',
      };
    }
    return {
      ok: true,
      reference: {
        repository,
        registryId: undefined,
        region: undefined,
        digest,
        tag: undefined,
        from: 'variable IMAGE_DIGEST',
        text: `${repository}@${digest}`,
      },
    };
  }
  return { ok: false, problem: 'no image in CustomData, and no IMAGE_URI or IMAGE_DIGEST pipeline variable' };
}

function imageFromJson(text: string): Identification | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  // Each field by any of its names. Two names of a field that decides the image, with different values
  // (`imageDigest` and `digest`), are a contradiction, never a choice of the first; a field that decides
  // nothing here (a tag beside a URI, a bare name under `image`) is not.
  const given = (...names: string[]): [string, string][] =>
    names.flatMap((n) => {
      const v = o[n];
      return typeof v === 'string' && v.trim() !== '' ? [[n, v.trim()] as [string, string]] : [];
    });
  const conflict = (values: [string, string][], shape: readonly RegExp[]) =>
    `CustomData gives one field two values: ${values.map(([n, v]) => `${n} (${quoted(v, shape)})`).join(' and ')}`;
  const digests = given('imageDigest', 'digest', 'ImageDigest');
  if (new Set(digests.map(([, v]) => v)).size > 1)
    return { ok: false, problem: conflict(digests, DIGEST_SHAPED) };
  const digest = digests[0]?.[1];
  if (digest !== undefined && !DIGEST.test(digest)) {
    return {
      ok: false,
      problem: `CustomData imageDigest (${quoted(digest, DIGEST_SHAPED)}) is not a sha256 digest: expected sha256: and 64 lowercase hex digits`,
    };
  }
  // URIs compared as the images they name: one image on the IPv4 and dual-stack hosts, or by tag and digest
  // and by digest alone, is one image.
  const uris = given('imageUri', 'imageURI', 'image', 'IMAGE_URI', 'ImageURI').flatMap(([n, v]) => {
    const reference = matchReference(v, 'CustomData');
    return reference ? [{ name: n, value: v, reference }] : [];
  });
  if (uris.length > 0) {
    const first = uris[0]!.reference;
    const withDigests = uris.filter((u) => u.reference.digest !== undefined);
    const same = uris.every(
      ({ reference: r }) =>
        r.repository === first.repository &&
        (r.registryId ?? '') === (first.registryId ?? '') &&
        (r.region ?? '') === (first.region ?? ''),
    );
    const oneDigest = new Set(withDigests.map((u) => u.reference.digest)).size <= 1;
    const oneTag = withDigests.length > 0 || new Set(uris.map((u) => u.reference.tag)).size <= 1;
    if (!same || !oneDigest || !oneTag) {
      return {
        ok: false,
        problem: conflict(
          uris.map((u) => [u.name, u.value]),
          IMAGE_SHAPED,
        ),
      };
    }
    return withDigest((withDigests[0] ?? uris[0]!).reference, digest);
  }
  // Without a URI, these name the image: a repository by its name (an ARN or bare, one repository either
  // way), a registry by its id; each given twice must agree, or whichever was read first would be judged.
  const repositories = given('repositoryName', 'repository', 'RepositoryName');
  const registries = given('registryId', 'RegistryId');
  const tags = given('imageTag', 'tag', 'ImageTag');
  const sameRepository = (v: string) => repositoryOf(v) ?? v;
  for (const [values, key, shape] of [
    [repositories, sameRepository, REPOSITORY_SHAPED],
    [registries, String, REGISTRY_SHAPED],
    [tags, String, TAG_SHAPED],
  ] as const) {
    if (new Set(values.map(([, v]) => key(v))).size > 1)
      return { ok: false, problem: conflict(values, shape) };
  }
  const registryId = registries[0]?.[1];
  const named = repositories[0]?.[1];
  const tag = tags[0]?.[1];
  if (named === undefined || (digest === undefined && tag === undefined)) {
    return {
      ok: false,
      problem:
        'CustomData is JSON but names no image (expected imageUri, or repositoryName with imageDigest or imageTag)',
    };
  }
  // As the variables' IMAGE_REPOSITORY is held: a name ECR cannot have (or an ARN of one) would be looked up
  // and recorded as written, where no audit query by the repository finds it.
  const repository = repositoryOf(named);
  if (repository === undefined) {
    return {
      ok: false,
      problem: `CustomData repositoryName (${describe(named)}) is not an ECR repository name: expected lowercase letters, digits and . _ - / (as ECR takes them), or the repository's ARN`,
    };
  }
  return {
    ok: true,
    reference: {
      repository,
      registryId,
      region: undefined,
      digest,
      tag,
      from: 'CustomData',
      // What names the image, not the whole CustomData: the text is recorded as the image's source, and the
      // JSON may hold other fields (notes, links).
      text: `${repository}${tag === undefined ? '' : `:${tag}`}${digest === undefined ? '' : `@${digest}`}`,
    },
  };
}

/**
 * A URI with the digest beside it (`{"imageUri": "…:latest", "imageDigest": "sha256:…"}`, as an ECR source
 * action's variables give them): the digest is what was built and is judged, never the tag, which may have
 * moved since. A URI that names another digest is a contradiction, not a choice to make.
 */
function withDigest(reference: ImageReference, digest: string | undefined): Identification {
  if (digest === undefined || digest === reference.digest) return { ok: true, reference };
  if (reference.digest !== undefined) {
    return {
      ok: false,
      problem: `CustomData names two digests: ${reference.digest} in its image URI and ${digest} as imageDigest`,
    };
  }
  return { ok: true, reference: { ...reference, digest, text: `${reference.text}@${digest}` } };
}

function matchReference(text: string, from: string): ImageReference | undefined {
  const m = ECR_URI.exec(text) ?? BARE_REFERENCE.exec(text);
  const g = m?.groups;
  if (!m || !g?.repository || (g.tag === undefined && g.digest === undefined)) return undefined;
  return {
    repository: g.repository,
    registryId: g.registry,
    region: g.region ?? g.dualStackRegion,
    digest: g.digest,
    tag: g.tag,
    from,
    text: m[0],
  };
}

/** Outside text quoted in a problem: one line, at most 120 characters, never half of one. */
function clip(text: string): string {
  return clipUnits(wellFormed(text.replace(/\s+/g, ' ')), 120);
}

// What a problem may quote of the pipeline's own text. A problem goes into the gate, the Gate State Change
// event on the default bus and the escalation, read by people who may not read the pipeline; CustomData and
// variables are free text that can hold notes or signed links. Only a value wholly of the shape its field asks
// for is quoted (an image URI, a digest, a repository name, a tag, a registry id); anything else is described.
const whole = (source: string) => new RegExp(`^(?:${source})$`);
const IMAGE_SHAPED = [
  whole(ECR_URI.source),
  whole(OTHER_REGISTRY_IMAGE.source),
  whole(`${REPOSITORY}(?::${TAG})?@sha256:[a-f0-9]{64}`),
];
// A digest of another algorithm or length is still a digest, and what was wrong with it is plain to see.
const DIGEST_SHAPED = [/^sha\d+:[A-Fa-f0-9]{1,128}$/];
const REPOSITORY_SHAPED = [
  whole(REPOSITORY),
  whole(`arn:aws[a-z-]*:ecr:[a-z0-9-]+:\\d{12}:repository/${REPOSITORY}`),
];
const REGISTRY_SHAPED = [/^\d{12}$/];
const TAG_SHAPED = [whole(TAG)];

/** A value of `shape` quoted; any other described by its length only. */
function quoted(value: string, shape: readonly RegExp[]): string {
  const v = value.trim();
  return shape.some((re) => re.test(v)) ? clip(v) : describe(v);
}

// A variable reference as CodePipeline writes one (`#{Namespace.Name}`, `#{variables.name}`): it names a
// variable, holds none of its value, and is what the owner must fix, so it is quoted; the text around it is not.
const VARIABLE = /#\{[A-Za-z0-9_.@-]{1,128}\}/g;
const VARIABLES_QUOTED = 3;

/** The unresolved variables of a text, quoted (the first few); `#{…}` when none is of a variable's shape. */
function unresolved(text: string): string {
  const names = [...new Set(text.match(VARIABLE) ?? [])];
  if (names.length === 0) return 'an unresolved variable #{…}';
  const shown = names
    .slice(0, VARIABLES_QUOTED)
    .map((v) => clipUnits(v, 64))
    .join(', ');
  const more = names.length > VARIABLES_QUOTED ? `, and ${names.length - VARIABLES_QUOTED} more` : '';
  return names.length === 1 ? `an unresolved variable ${shown}` : `unresolved variables ${shown}${more}`;
}

function describe(value: string): string {
  const n = value.trim().length;
  return `${n} character${n === 1 ? '' : 's'}, not quoted`;
}

/**
 * The repository a person names (`tollgate evaluate --repository`): a bare name, the repository's ARN, or an
 * image URI (its tag or digest dropped). Undefined when it is none of these: a policy's `repositories` globs
 * match bare names, and an ARN taken as one would silently match none.
 */
export function repositoryOf(text: string): string | undefined {
  const value = text.trim();
  const bare = new RegExp(`^${REPOSITORY}$`);
  const name = repositoryName(value);
  if (name !== value) return bare.test(name) ? name : undefined;
  // A registry host is a valid repository name too (dots and slashes): the URI reading comes first.
  const uri = new RegExp(`^${ECR_URI.source}$`).exec(value);
  if (uri?.groups?.repository) return uri.groups.repository;
  return bare.test(value) ? value : undefined;
}

/**
 * The registry (account) of an ECR repository ARN; undefined for a bare name. Inspector's scan events name the
 * repository by ARN: its account is the registry's, which an event's own `account` need not be.
 */
export function registryOf(nameOrArn: string): string | undefined {
  return /^arn:aws[a-z-]*:ecr:[^:]*:(\d{12}):repository\//.exec(nameOrArn)?.[1];
}

/** The repository name of an ECR repository ARN (Inspector's scan events send the ARN as `repository-name`). */
export function repositoryName(nameOrArn: string): string {
  const m = /^arn:aws[a-z-]*:ecr:[^:]*:\d*:repository\/(.+)$/.exec(nameOrArn);
  return m?.[1] ?? nameOrArn;
}
