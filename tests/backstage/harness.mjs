// Backstage catalog harness against an S3-compatible endpoint (moto).
// env: MOTO_URL (e.g. http://127.0.0.1:5000), BUCKET, PREFIX (optional)
// AWS creds come from the default chain (AWS_ACCESS_KEY_ID/...); dummies set if absent.
import { ConfigReader } from '@backstage/config';
import {
  EntityPolicies, SchemaValidEntityPolicy, DefaultNamespaceEntityPolicy,
  NoForeignRootFieldsEntityPolicy, FieldFormatEntityPolicy, makeValidator,
  entityEnvelopeSchemaValidator, entitySchemaValidator,
  resourceEntityV1alpha1Validator, parseEntityRef, stringifyEntityRef,
  stringifyLocationRef, ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION,
} from '@backstage/catalog-model';
import { AwsS3EntityProvider } from '@backstage/plugin-catalog-backend-module-aws';
import { parseEntityYaml } from '@backstage/plugin-catalog-node';
import { UrlReaders } from '@backstage/backend-defaults/urlReader';

const { MOTO_URL, BUCKET, PREFIX } = process.env;
if (!MOTO_URL || !BUCKET) throw new Error('MOTO_URL and BUCKET are required');
process.env.AWS_ACCESS_KEY_ID ??= 'testing';
process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
process.env.AWS_REGION ??= 'us-east-1';
// silence the SDK's "Node < 22" deprecation warning (emitted at client creation)
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// Minimal LoggerService (logs to stderr so stdout stays pure JSON).
const mkLogger = (meta = {}) => {
  const log = lvl => (msg, m) => {
    if (lvl !== 'debug') console.error(`[${lvl}] ${msg}`, JSON.stringify({ ...meta, ...(m ?? {}) }));
  };
  return { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug'),
           child: m => mkLogger({ ...meta, ...m }) };
};
const logger = mkLogger();

const config = new ConfigReader({
  // Endpoint + path style come ONLY from the (first) awsS3 integration.
  // endpoint must be scheme://host[:port] with no path.
  integrations: { awsS3: [{ endpoint: MOTO_URL, s3ForcePathStyle: true }] },
  catalog: {
    providers: {
      awsS3: {
        harness: {
          bucketName: BUCKET,
          region: 'us-east-1',
          ...(PREFIX ? { prefix: PREFIX } : {}),
        },
      },
    },
  },
});

// ---- (b) run AwsS3EntityProvider with a fake connection --------------------
const mutations = [];
const connection = {
  applyMutation: async m => { mutations.push(m); },
  refresh: async () => {},
};
// No-op task runner: connect() calls runner.run({id, fn}); we refresh by hand
// so errors propagate (the scheduled fn catches & logs them).
const schedule = { run: async () => {} };
const [provider] = AwsS3EntityProvider.fromConfig(config, { logger, schedule });
await provider.connect(connection);
await provider.refresh(logger);

const full = mutations.at(-1);
if (!full || full.type !== 'full') throw new Error('no full mutation recorded');
const locations = full.entities.map(({ entity, locationKey }) => ({
  locationKey,
  name: entity.metadata.name,
  type: entity.spec.type,
  target: entity.spec.target,
  presence: entity.spec.presence,
}));

// ---- (a) validation, mirroring catalog-backend's processing pipeline ------
const policy = EntityPolicies.allOf([
  new SchemaValidEntityPolicy(),
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(makeValidator()),
]);
const validateEnvelope = entityEnvelopeSchemaValidator();
const validateEntity = entitySchemaValidator();

async function validate(raw, location) {
  // ProcessorOutputCollector: envelope check, then location annotations added
  let entity = validateEnvelope(raw);
  const loc = stringifyLocationRef(location);
  entity = { ...entity, metadata: { ...entity.metadata, annotations: {
    ...(entity.metadata.annotations ?? {}),
    [ANNOTATION_ORIGIN_LOCATION]: loc, [ANNOTATION_LOCATION]: loc } } };
  entity = await policy.enforce(entity);             // runPolicyStep
  validateEntity(entity);                            // runValidateStep
  if (!(await resourceEntityV1alpha1Validator.check(entity))) // validateEntityKind
    throw new Error(`not a valid ${entity.apiVersion} ${entity.kind}`);
  // BuiltinKindsEntityProcessor.postProcessEntity parses the relation refs
  const ns = entity.metadata.namespace;
  for (const t of [entity.spec.owner].flat().filter(Boolean))
    parseEntityRef(t, { defaultKind: 'Group', defaultNamespace: ns });
  for (const f of ['dependsOn', 'dependencyOf'])
    for (const t of [entity.spec[f] ?? []].flat()) parseEntityRef(t, { defaultNamespace: ns });
  for (const t of [entity.spec.system].flat().filter(Boolean))
    parseEntityRef(t, { defaultKind: 'System', defaultNamespace: ns });
  return entity;
}

// ---- (c) read each location back like UrlReaderProcessor + parseEntityYaml --
const reader = UrlReaders.default({ config, logger });
const entities = [];
const invalid = [];
for (const { target } of locations) {
  let files;
  try {
    ({ files } = await reader.search(target));   // what UrlReaderProcessor calls
    if (files.length === 0) throw new Error(`no matching files found for ${target}`);
  } catch (e) {
    invalid.push({ location: target, error: String(e) });
    continue;
  }
  for (const file of files) {
    const data = await file.content();
    const location = { type: 'url', target: file.url };
    for (const r of parseEntityYaml(data, location)) {
      if (r.type !== 'entity') {
        invalid.push({ location: file.url, error: String(r.error) });
        continue;
      }
      let ref;
      try { ref = stringifyEntityRef(r.entity); } catch { ref = r.entity?.metadata?.name; }
      try {
        const entity = await validate(r.entity, location);
        entities.push({ location: file.url, ref, entity });
      } catch (e) {
        invalid.push({ location: file.url, ref, entity: r.entity, error: String(e) });
      }
    }
  }
}

// The catalog rejects the same entity ref coming from two different locations.
const seen = new Map(); // refs compare case-insensitively in the catalog
for (const e of entities) {
  const prev = seen.get(e.ref.toLowerCase());
  if (prev && prev !== e.location)
    invalid.push({ location: e.location, ref: e.ref,
      error: `conflict: ${e.ref} also emitted by ${prev}` });
  else seen.set(e.ref.toLowerCase(), e.location);
}

console.log(JSON.stringify({ locations, entities, invalid }, null, 2));
process.exitCode = invalid.length ? 1 : 0;
