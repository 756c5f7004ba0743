//! Project operations: CreateProject, BatchGetProjects, ListProjects.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::pagination::page;
use crate::state::{Ctx, Store, default_project, parse, project_from, to_json};

#[derive(Deserialize)]
struct CreateProjectInput {
    name: String,
}

/// `CreateProject`.
pub fn create_project(store: &mut Store, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: CreateProjectInput = parse(body)?;
    let valid = (2..=255).contains(&input.name.len())
        && input
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && input
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::invalid_input(format!(
            "Invalid project name: {}",
            input.name
        )));
    }
    if store.projects.contains_key(&input.name) {
        return Err(ApiError::already_exists(format!(
            "Project already exists: arn:aws:codebuild:{}:{}:project/{}",
            ctx.region, ctx.account, input.name
        )));
    }
    let project = default_project(ctx, &input.name, body.clone());
    let out = json!({ "project": to_json(&project) });
    store.projects.insert(input.name, project);
    Ok(out)
}

#[derive(Deserialize)]
struct NamesInput {
    #[serde(default)]
    names: Vec<String>,
}

/// `BatchGetProjects`.
pub fn batch_get_projects(store: &mut Store, _ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: NamesInput = parse(body)?;
    crate::builds::check_batch_get(&input.names)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &input.names {
        match store.projects.get(project_from(name)) {
            Some(project) => found.push(to_json(project)),
            None => missing.push(name.clone()),
        }
    }
    Ok(json!({ "projects": found, "projectsNotFound": missing }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListProjectsInput {
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
}

/// `ListProjects` (default: by name, descending, as the service documents).
pub fn list_projects(store: &mut Store, _ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let input: ListProjectsInput = parse(body)?;
    let mut projects: Vec<_> = store.projects.values().collect();
    match input.sort_by.as_deref().unwrap_or("NAME") {
        "NAME" => projects.sort_by(|a, b| a.name.cmp(&b.name)),
        "CREATED_TIME" => projects.sort_by_key(|p| p.created),
        "LAST_MODIFIED_TIME" => projects.sort_by_key(|p| p.last_modified),
        other => return Err(ApiError::invalid_input(format!("Invalid sortBy: {other}"))),
    }
    let names: Vec<String> = projects.into_iter().map(|p| p.name.clone()).collect();
    let names = crate::builds::sort_ids(names, input.sort_order.as_deref())?;
    let (names, next) = page(&names, input.next_token.as_deref(), None)?;
    let mut out = json!({ "projects": names });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}
