//! The SCIM schemas idlcm serves (RFC 7643 §4, §8.7): core User, enterprise User extension,
//! Group, and idlcm's own User extension for app attributes such as a role. One table drives
//! `/Schemas`, attribute-name normalisation, mutability checks and filter case-sensitivity.

use serde_json::{Map, Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const IDLCM_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:idlcm:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
    pub sub: &'static [Attr],
}

impl Attr {
    pub fn sub_attr(&self, name: &str) -> Option<&'static Attr> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// Builds attribute definitions tersely; defaults are RFC 7643 §2.2 defaults.
const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical: &[],
        reference_types: &[],
        description,
        sub: &[],
    }
}

const fn s(name: &'static str, d: &'static str) -> Attr {
    attr(name, Type::String, d)
}

macro_rules! with {
    ($a:expr, $($f:ident : $v:expr),* $(,)?) => { Attr { $($f: $v,)* ..$a } };
}

/// Sub-attributes shared by the multi-valued "value/display/type/primary" attributes.
macro_rules! multi_sub {
    ($types:expr, $value_ty:expr) => {
        &[
            attr("value", $value_ty, "The attribute's value."),
            s("display", "A human-readable name, primarily used for display purposes."),
            with!(s("type", "A label indicating the attribute's function."), canonical: $types),
            attr("primary", Type::Boolean, "Indicates the primary or preferred value."),
        ]
    };
}

pub static USER_ATTRS: &[Attr] = &[
    with!(s("userName", "Unique identifier for the User, typically used to sign in."),
        required: true, uniqueness: Uniqueness::Server),
    with!(attr("name", Type::Complex, "The components of the user's real name."), sub: &[
        s("formatted", "The full name, formatted for display."),
        s("familyName", "The family name of the User."),
        s("givenName", "The given name of the User."),
        s("middleName", "The middle name(s) of the User."),
        s("honorificPrefix", "The honorific prefix(es) of the User."),
        s("honorificSuffix", "The honorific suffix(es) of the User."),
    ]),
    s("displayName", "The name of the User, suitable for display to end-users."),
    s("nickName", "The casual way to address the user."),
    with!(attr("profileUrl", Type::Reference, "A URI of the User's online profile."), reference_types: &["external"]),
    s("title", "The user's title, such as \"Vice President\"."),
    s("userType", "Identifies the relationship between the organization and the user."),
    s("preferredLanguage", "The User's preferred written or spoken language."),
    s("locale", "The User's default location for localizing."),
    s("timezone", "The User's time zone in IANA Time Zone database format."),
    attr("active", Type::Boolean, "The User's administrative status."),
    with!(s("password", "The User's cleartext password. Never stored or returned by idlcm."),
        mutability: Mutability::WriteOnly, returned: Returned::Never),
    with!(attr("emails", Type::Complex, "Email addresses for the user."), multi: true,
        sub: multi_sub!(&["work", "home", "other"], Type::String)),
    with!(attr("phoneNumbers", Type::Complex, "Phone numbers for the User."), multi: true,
        sub: multi_sub!(&["work", "home", "mobile", "fax", "pager", "other"], Type::String)),
    with!(attr("ims", Type::Complex, "Instant messaging addresses for the User."), multi: true,
        sub: multi_sub!(&[], Type::String)),
    with!(attr("photos", Type::Complex, "URLs of photos of the User."), multi: true,
        sub: multi_sub!(&["photo", "thumbnail"], Type::Reference)),
    with!(attr("addresses", Type::Complex, "A physical mailing address for this User."), multi: true, sub: &[
        s("formatted", "The full mailing address."),
        s("streetAddress", "The full street address component."),
        s("locality", "The city or locality component."),
        s("region", "The state or region component."),
        s("postalCode", "The zip code or postal code component."),
        s("country", "The country name component."),
        with!(s("type", "A label indicating the attribute's function."), canonical: &["work", "home", "other"]),
        attr("primary", Type::Boolean, "Indicates the primary or preferred address."),
    ]),
    with!(attr("groups", Type::Complex, "A list of groups to which the user belongs."),
        multi: true, mutability: Mutability::ReadOnly, sub: &[
        with!(s("value", "The identifier of the User's group."), mutability: Mutability::ReadOnly),
        with!(attr("$ref", Type::Reference, "The URI of the corresponding Group resource."),
            mutability: Mutability::ReadOnly, reference_types: &["Group"]),
        with!(s("display", "A human-readable name."), mutability: Mutability::ReadOnly),
        with!(s("type", "A label indicating the attribute's function."),
            mutability: Mutability::ReadOnly, canonical: &["direct", "indirect"]),
    ]),
    with!(attr("entitlements", Type::Complex, "A list of entitlements for the User."), multi: true,
        sub: multi_sub!(&[], Type::String)),
    with!(attr("roles", Type::Complex, "A list of roles for the User."), multi: true,
        sub: multi_sub!(&[], Type::String)),
    with!(attr("x509Certificates", Type::Complex, "A list of certificates issued to the User."), multi: true,
        sub: multi_sub!(&[], Type::Binary)),
];

pub static ENTERPRISE_ATTRS: &[Attr] = &[
    s("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
    s("costCenter", "Identifies the name of a cost center."),
    s("organization", "Identifies the name of an organization."),
    s("division", "Identifies the name of a division."),
    s("department", "Identifies the name of a department."),
    with!(attr("manager", Type::Complex, "The User's manager."), sub: &[
        s("value", "The id of the SCIM resource representing the User's manager."),
        with!(attr("$ref", Type::Reference, "The URI of the manager's User resource."), reference_types: &["User"]),
        with!(s("displayName", "The displayName of the User's manager."), mutability: Mutability::ReadOnly),
    ]),
];

pub static IDLCM_USER_ATTRS: &[Attr] =
    &[s("role", "The user's role in the integrated app; an integration may name this attribute as its role source.")];

pub static GROUP_ATTRS: &[Attr] = &[
    with!(s("displayName", "A human-readable name for the Group."), required: true, uniqueness: Uniqueness::Server),
    with!(attr("members", Type::Complex, "A list of members of the Group."), multi: true, sub: &[
        with!(s("value", "Identifier of the member of this Group."), mutability: Mutability::Immutable),
        with!(attr("$ref", Type::Reference, "The URI of the member resource."),
            mutability: Mutability::Immutable, reference_types: &["User", "Group"]),
        with!(s("display", "A human-readable name."), mutability: Mutability::ReadOnly),
        with!(s("type", "The type of member."), mutability: Mutability::Immutable, canonical: &["User", "Group"]),
    ]),
];

/// Attributes every resource carries (RFC 7643 §3.1), resolved before schema attributes.
pub static COMMON_ATTRS: &[Attr] = &[
    with!(s("id", "Server-assigned identifier."), case_exact: true, mutability: Mutability::ReadOnly,
        returned: Returned::Always, uniqueness: Uniqueness::Server),
    with!(s("externalId", "Identifier set by the provisioning client."), case_exact: true),
    with!(attr("meta", Type::Complex, "Resource metadata."), mutability: Mutability::ReadOnly, sub: &[
        with!(s("resourceType", "The resource type."), case_exact: true, mutability: Mutability::ReadOnly),
        with!(attr("created", Type::DateTime, "When the resource was added."), mutability: Mutability::ReadOnly),
        with!(attr("lastModified", Type::DateTime, "When the resource was last modified."), mutability: Mutability::ReadOnly),
        with!(attr("location", Type::Reference, "The URI of the resource."), mutability: Mutability::ReadOnly),
        with!(s("version", "The version (ETag) of the resource."), case_exact: true, mutability: Mutability::ReadOnly),
    ]),
];

/// One schema: its URN, names and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attrs: &'static [Attr],
}

pub static USER: Schema = Schema { id: USER_SCHEMA, name: "User", description: "User Account", attrs: USER_ATTRS };
pub static ENTERPRISE: Schema =
    Schema { id: ENTERPRISE_SCHEMA, name: "EnterpriseUser", description: "Enterprise User", attrs: ENTERPRISE_ATTRS };
pub static IDLCM_USER: Schema = Schema {
    id: IDLCM_USER_SCHEMA,
    name: "IdlcmUser",
    description: "App attributes idlcm carries to the integrated app",
    attrs: IDLCM_USER_ATTRS,
};
pub static GROUP: Schema = Schema { id: GROUP_SCHEMA, name: "Group", description: "Group", attrs: GROUP_ATTRS };

pub static ALL_SCHEMAS: [&Schema; 4] = [&USER, &ENTERPRISE, &IDLCM_USER, &GROUP];

/// Okta's role resource ("SCIM with entitlements"): the integration's role catalog, read-only.
pub const ROLE_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Role";
pub static ROLE_ATTRS: &[Attr] = &[
    with!(s("displayName", "The role's name as admins see it."), mutability: Mutability::ReadOnly),
    with!(s("description", "What the role allows in the app."), mutability: Mutability::ReadOnly),
];
pub static ROLE: Schema = Schema { id: ROLE_SCHEMA, name: "Role", description: "A role of the app", attrs: ROLE_ATTRS };
pub static ROLE_TYPE: ResourceType = ResourceType { name: "Role", endpoint: "/Roles", core: &ROLE, extensions: &[] };

/// Okta's entitlement resource: the values of one `roles.entitlement_types[]`, read-only.
pub const ENTITLEMENT_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Entitlement";
pub static ENTITLEMENT_ATTRS: &[Attr] = &[
    with!(s("displayName", "The entitlement's name as admins see it."), mutability: Mutability::ReadOnly),
    with!(s("type", "The entitlement type (its resource type's name)."), mutability: Mutability::ReadOnly),
    with!(s("description", "What the entitlement grants in the app."), mutability: Mutability::ReadOnly),
];
pub static ENTITLEMENT: Schema = Schema {
    id: ENTITLEMENT_SCHEMA,
    name: "Entitlement",
    description: "An entitlement of the app",
    attrs: ENTITLEMENT_ATTRS,
};

/// A resource type: its core schema and the extensions it may carry.
#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

pub static USER_TYPE: ResourceType =
    ResourceType { name: "User", endpoint: "/Users", core: &USER, extensions: &[&ENTERPRISE, &IDLCM_USER] };
pub static GROUP_TYPE: ResourceType =
    ResourceType { name: "Group", endpoint: "/Groups", core: &GROUP, extensions: &[] };

fn find(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

impl ResourceType {
    /// The extension schema with this URN (case-insensitive), if the type declares it.
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions.iter().copied().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    pub fn is_core_urn(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn)
    }

    /// Resolves an attribute by optional schema URN and name (case-insensitive).
    /// Common attributes (`id`, `externalId`, `meta`) resolve without a URN or with the core URN.
    pub fn attr(&self, uri: Option<&str>, name: &str) -> Option<&'static Attr> {
        match uri {
            None => find(COMMON_ATTRS, name).or_else(|| find(self.core.attrs, name)),
            Some(u) if self.is_core_urn(u) => find(COMMON_ATTRS, name).or_else(|| find(self.core.attrs, name)),
            Some(u) => self.extension(u).and_then(|s| find(s.attrs, name)),
        }
    }

    /// Resolves `attr` or `attr.sub`.
    pub fn attr_path(&self, uri: Option<&str>, name: &str, sub: Option<&str>) -> Option<&'static Attr> {
        let a = self.attr(uri, name)?;
        match sub {
            None => Some(a),
            Some(sn) => a.sub_attr(sn),
        }
    }
}

impl super::filter::AttrSchema for ResourceType {
    fn case_exact(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) -> bool {
        self.attr_path(uri, attr, sub).is_some_and(|a| a.case_exact)
    }
    fn kind(&self, uri: Option<&str>, attr: &str, sub: Option<&str>) -> super::filter::AttrKind {
        kind_of(self.attr_path(uri, attr, sub))
    }
}

/// What the filter evaluator needs to know of an attribute's type (`None`: not in the schema).
pub fn kind_of(attr: Option<&Attr>) -> super::filter::AttrKind {
    attr.map(|a| a.ty)
}

// ---- /Schemas representation (RFC 7643 §7) ----

/// The RFC 7643 §2.3 type name.
pub fn type_name(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Boolean => "boolean",
        Type::Decimal => "decimal",
        Type::Integer => "integer",
        Type::DateTime => "dateTime",
        Type::Binary => "binary",
        Type::Reference => "reference",
        Type::Complex => "complex",
    }
}

fn mutability_name(m: Mutability) -> &'static str {
    match m {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned_name(r: Returned) -> &'static str {
    match r {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness_name(u: Uniqueness) -> &'static str {
    match u {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

fn attr_json(a: &Attr) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    m.insert("type".into(), json!(type_name(a.ty)));
    m.insert("multiValued".into(), json!(a.multi));
    m.insert("description".into(), json!(a.description));
    m.insert("required".into(), json!(a.required));
    if !a.canonical.is_empty() {
        m.insert("canonicalValues".into(), json!(a.canonical));
    }
    if matches!(a.ty, Type::String | Type::Reference | Type::Binary) {
        m.insert("caseExact".into(), json!(a.case_exact));
    }
    m.insert("mutability".into(), json!(mutability_name(a.mutability)));
    m.insert("returned".into(), json!(returned_name(a.returned)));
    if a.ty != Type::Complex && a.ty != Type::Boolean {
        m.insert("uniqueness".into(), json!(uniqueness_name(a.uniqueness)));
    }
    if !a.reference_types.is_empty() {
        m.insert("referenceTypes".into(), json!(a.reference_types));
    }
    if !a.sub.is_empty() {
        m.insert("subAttributes".into(), Value::Array(a.sub.iter().map(attr_json).collect()));
    }
    Value::Object(m)
}

/// The `Schema` resource for `/Schemas/{id}`; `base` is the integration's SCIM base URL.
pub fn schema_resource(schema: &Schema, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{}", schema.id) },
    })
}

/// The `ResourceType` resource for `/ResourceTypes/{name}`.
pub fn resource_type_resource(rt: &ResourceType, base: &str) -> Value {
    let ext: Vec<Value> = rt.extensions.iter().map(|s| json!({ "schema": s.id, "required": false })).collect();
    let mut v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.core.description,
        "schema": rt.core.id,
        "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", rt.name) },
    });
    if !ext.is_empty() {
        v["schemaExtensions"] = Value::Array(ext);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::AttrSchema;

    #[test]
    fn resolves_names_case_insensitively_and_by_urn() {
        assert_eq!(USER_TYPE.attr(None, "USERNAME").map(|a| a.name), Some("userName"));
        assert_eq!(USER_TYPE.attr(Some(USER_SCHEMA), "emails").map(|a| a.name), Some("emails"));
        assert_eq!(
            USER_TYPE.attr_path(Some(ENTERPRISE_SCHEMA), "manager", Some("VALUE")).map(|a| a.name),
            Some("value")
        );
        assert!(USER_TYPE.attr(None, "department").is_none(), "enterprise attributes need their URN");
        assert!(GROUP_TYPE.attr(None, "members").is_some());
    }

    #[test]
    fn case_exactness_follows_rfc_7643() {
        assert!(!USER_TYPE.case_exact(None, "userName", None));
        assert!(USER_TYPE.case_exact(None, "id", None));
        assert!(USER_TYPE.case_exact(None, "externalId", None));
        assert!(!GROUP_TYPE.case_exact(None, "displayName", None));
    }

    #[test]
    fn schema_json_omits_absent_values_and_uses_camel_case() {
        let v = schema_resource(&USER, "https://x/scim/v2/i");
        let text = v.to_string();
        assert!(!text.contains("null"), "Entra requires absent values to be omitted, not null");
        assert!(text.contains("\"readWrite\""));
        let password = v["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(password["returned"], "never");
        assert_eq!(password["mutability"], "writeOnly");
    }
}
